"""A signal at the end of a finished scan: does the exit status still say what happened?

    python benchmarks/end_signal.py FOLDER [--runs 40] [--signal INT] [--seed 0]

Times one ``fakedet scan --exit-code FOLDER`` run, then runs it again ``--runs`` times, each
sent the signal at a random moment between 0.7 and 1.3 times that length (as ``timeout
--preserve-status -s SIG T`` does), and counts the outcomes:

- ``interrupted``: status 128 + N and fakedet's "interrupted"/"terminated"/"hung up" message;
- ``complete``: the scan's own status (0, 1 or 3), every record and the summary written;
- ``silent``: status 128 + N (or killed by the signal) after every record and the summary,
  with no message: the bug this checks for (docs/reliability.md, "A signal while the process
  ends");
- ``other``: anything else (printed).

Exit status 1 when any run is ``silent`` or ``other``.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import time

WORDS = ("interrupted", "terminated", "hung up")


def run(folder: str, sig: int, after: float | None) -> tuple[int, str, str]:
    p = subprocess.Popen([sys.executable, "-m", "fakedet", "scan", "--exit-code", folder],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if after is not None:
        try:
            p.wait(timeout=after)
        except subprocess.TimeoutExpired:
            p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--signal", default="INT", choices=["INT", "TERM", "HUP"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sig = getattr(signal, f"SIG{args.signal}")
    t0 = time.perf_counter()
    status, out, _ = run(args.folder, sig, None)
    length, n = time.perf_counter() - t0, len(out.splitlines())
    print(f"unsignalled run: {length:.2f} s, status {status}, {n} records")
    rng = random.Random(args.seed)
    counts = {"interrupted": 0, "complete": 0, "silent": 0, "other": 0}
    for _ in range(args.runs):
        t = rng.uniform(0.5, 1.2) * length
        code, o, e = run(args.folder, sig, t)
        whole = len(o.splitlines()) == n and "img/s" in e
        said = any(w in e for w in WORDS)
        if code in (128 + sig, -sig) and said:
            kind = "interrupted"
        elif code == status and whole and not said:
            kind = "complete"
        elif code in (128 + sig, -sig) and whole:
            kind = "silent"
        else:
            kind = "other"
            print(f"  at {t:.2f} s: status {code}, {len(o.splitlines())} records, stderr {e[-200:]!r}")
        counts[kind] += 1
    print(", ".join(f"{k} {v}" for k, v in counts.items()) + f" (of {args.runs}, SIG{args.signal})")
    return 1 if counts["silent"] or counts["other"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
