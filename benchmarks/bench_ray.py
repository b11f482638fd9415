#!/usr/bin/env python
"""The Ray engine against the local one, on the same images in the same run.

    python benchmarks/bench_ray.py                      # 200 1024 px JPEGs, shipped weights
    python benchmarks/bench_ray.py --size face --n 400 --repeat 2 --json ray.json

Each configuration is a fresh ``fakedet scan`` process over the same folder (records to a file,
``--no-provenance`` off: the default work), timed from outside (wall time, start-up included)
and from its own summary line (the scan's time, start-up excluded):

  * ``local``: ``fakedet scan DIR`` (the local engine: decoding threads and the model in one
    process);
  * ``ray-1``: ``fakedet scan --engine ray --ray-workers 1`` (a local Ray started by the scan:
    decoding in Ray tasks, the model in one actor);
  * ``ray-2``: the same with two scoring actors.

"overhead" is Ray's cost on one machine: the wall time of ``ray-1`` minus ``local`` (Ray's start,
the actors' model loads, moving the arrays through the object store) and the ratio of their
images/s. It also checks that every configuration gave the same records (paths, labels,
p_fake within 1e-5). Images are generated (fakedet.evaluation.synthetic), so anyone can rerun it.
On a cluster, run it with RAY_ADDRESS set and ``--workers 1,2,4,...``: the Ray runs join the
cluster instead of starting a local Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from fakedet.evaluation.synthetic import SIZES, make_images  # noqa: E402

SUMMARY = re.compile(r"\((?P<scan>[0-9.]+) s(, (?P<rate>[0-9.]+) img/s)?; (?P<wall>[0-9.]+) s with start-up")


def run(folder: Path, out: Path, args: list[str], weights) -> dict:
    cmd = [sys.executable, "-m", "fakedet", "scan", "--no-progress", "-f", "jsonl", "-o", str(out),
           *(["-w", weights] if weights else []), *args, str(folder)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    m = None
    for line in p.stderr.splitlines():
        m = SUMMARY.search(line) or m
    scan = float(m.group("scan")) if m else float("nan")
    return {"wall_s": round(wall, 2), "scan_s": round(scan, 2),
            "records": [json.loads(x) for x in out.read_text().splitlines()]}


def same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x["path"] == y["path"] and x["label"] == y["label"] and x["error"] == y["error"]
        and (x["p_fake"] is None) == (y["p_fake"] is None)
        and (x["p_fake"] is None or abs(x["p_fake"] - y["p_fake"]) <= 1e-5) for x, y in zip(a, b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="1024")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", default="1,2", help="scoring actors of the Ray runs, comma-separated")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--dir", default=None, help="where to make the images (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    a = ap.parse_args()

    tmp = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="fakedet-bench-ray-"))
    folder = tmp / f"{a.size}-{a.n}"
    make_images(folder, a.size, a.n)
    configs = [("local", [])] + [(f"ray-{w}", ["--engine", "ray", "--ray-workers", w])
                                 for w in a.workers.split(",")]
    rows, reference = [], None
    for rep in range(1, a.repeat + 1):
        for name, args in configs:
            r = run(folder, tmp / f"{name}.jsonl", args, a.weights)
            reference = reference or r["records"]
            rate = a.n / r["scan_s"] if r["scan_s"] == r["scan_s"] and r["scan_s"] > 0 else float("nan")
            rows.append({"run": rep, "config": name, "wall_s": r["wall_s"], "scan_s": r["scan_s"],
                         "img_per_s": round(rate, 1), "img_per_s_wall": round(a.n / r["wall_s"], 1),
                         "same_records": same(reference, r["records"])})
            print(f"run {rep} {name}: {r['wall_s']} s wall, {r['scan_s']} s scanning", file=sys.stderr)

    print(f"{a.n} {SIZES[a.size][0]}x{SIZES[a.size][1]} JPEGs; {os.cpu_count()} CPUs; "
          f"{platform.machine()} {platform.system()}; {time.strftime('%Y-%m-%d')}\n")
    print("| run | engine | wall s (start-up incl.) | scan s | img/s (scan) | img/s (wall) | same records |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['config']} | {r['wall_s']} | {r['scan_s']} | {r['img_per_s']} | "
              f"{r['img_per_s_wall']} | {'yes' if r['same_records'] else 'NO'} |")
    by = {}
    for r in rows:
        by.setdefault(r["config"], []).append(r)
    if "ray-1" in by:
        for rep in range(a.repeat):
            lo, r1 = by["local"][rep], by["ray-1"][rep]
            print(f"\nrun {rep + 1} overhead of Ray on one machine (ray-1 vs local): "
                  f"{r1['wall_s'] - lo['wall_s']:+.1f} s wall, "
                  f"scan rate {r1['img_per_s'] / lo['img_per_s']:.2f}x local")
    if a.json:
        Path(a.json).write_text(json.dumps({"n": a.n, "size": a.size, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
