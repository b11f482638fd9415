#!/usr/bin/env python
"""End-to-end `fakedet scan` images/s of two or more commits of this repository, on the same
images, in the same session, alternating (so that the machine's drift hits every commit alike):

    python benchmarks/bench_commits.py HEAD~1 HEAD                 # 1024 px, face crops, 12 MP
    python benchmarks/bench_commits.py a70eb30 HEAD --rounds 5 --sizes face

Each commit is checked out with ``git worktree`` into a temporary folder and run from its ``src/``
with this environment's packages (so it measures code, not dependencies). Each scan reads a
``--files-from`` list of the generated images repeated ``--repeat`` times, so that start-up
weighs little; the figure is the rate the scan's own summary line reports (images/s from the
first record to the last). Printed as a Markdown table: every round, then the median per commit.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fakedet.evaluation.synthetic import make_images

ROOT = Path(__file__).resolve().parents[1]
N = {"face": 800, "1024": 240, "12mp": 40, "phone": 80}
RATE = re.compile(r"([0-9.]+) img/s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("commits", nargs="+", help="commits (anything git rev-parse accepts)")
    ap.add_argument("--sizes", default="1024,face,12mp", help="comma-separated: face, 1024, 12mp, phone")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5, help="times each image is listed")
    ap.add_argument("--args", default="", help="extra arguments for every scan, e.g. '-j 1 -b 64'")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fakedet-bench-commits-") as tmp:
        tmp = Path(tmp)
        trees = {}
        for c in args.commits:
            sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", c], check=True,
                                 capture_output=True, text=True).stdout.strip()
            tree = tmp / f"tree-{sha}"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), sha],
                           check=True, capture_output=True)
            trees[c] = tree
        try:
            lists = {}
            for size in args.sizes.split(","):
                paths = make_images(tmp / size, size, N[size])
                lists[size] = tmp / f"{size}.list"
                lists[size].write_text("\n".join(str(p) for p in paths * args.repeat) + "\n")
            rates: dict = {}
            print("| round | size | commit | img/s |\n|---|---|---|---|")
            for r in range(1, args.rounds + 1):
                for size, lst in lists.items():
                    for c, tree in trees.items():
                        code = (f"import sys; sys.path.insert(0, {str(tree / 'src')!r}); "
                                "from fakedet.cli import main; sys.exit(main())")
                        p = subprocess.run([sys.executable, "-c", code, "scan", "--files-from", str(lst),
                                            *args.args.split()], capture_output=True, text=True)
                        m = RATE.findall(p.stderr)
                        rate = float(m[-1]) if m else float("nan")
                        rates.setdefault((size, c), []).append(rate)
                        print(f"| {r} | {size} | {c} | {rate:.1f} |", flush=True)
            print("\n| size | commit | median img/s | rounds |\n|---|---|---|---|")
            for (size, c), v in rates.items():
                print(f"| {size} | {c} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
