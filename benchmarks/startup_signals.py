#!/usr/bin/env python
"""Signals during start-up: a fakedet command stopped at random moments, many times.

    python benchmarks/startup_signals.py --runs 500 --json runs/startup_signals.json
    python benchmarks/startup_signals.py --command explain --signal INT --runs 100

Each run starts ``python -m fakedet`` on a folder of 40 generated 160 px images (``scan --faces
-f csv`` by default; ``--command`` scan, explain or eval) and sends it SIGTERM (or SIGINT) at a
moment drawn uniformly from ``--from``-``--to`` seconds after the start (seeded), the window in
which the command imports torch and loads its model on this project's 2-core machine. Each run
ends in one of:

* ``stopped``: exit status 128 + the signal, fakedet's own handling;
* ``default action``: ended by the signal itself (a negative status of the same signal), before
  fakedet's handlers were installed, which a shell reports as the same 128 + N;
* ``finished``: the command ended first (status 0, 1 or 3);
* ``crashed``: any other status, e.g. -6 (SIGABRT: an interruption raised inside libtorch's C++
  aborts the process; docs/reliability.md), or a traceback on stderr;
* ``hung``: no exit within 60 s of the signal.

Prints the counts, writes --json, and exits 1 if any run crashed or hung.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_folder(root: Path, n: int = 40) -> None:
    rng = np.random.default_rng(0)
    for sub in ("real", "fake"):  # eval's layout; scan walks both
        (root / sub).mkdir(parents=True)
    for i in range(n):
        yy, xx = np.mgrid[0:160, 0:160]
        arr = rng.integers(0, 256, (160, 160, 3)).astype(np.int32) // 4
        arr[..., 0] += xx * 3 // 4
        arr[..., 1] += yy * 3 // 4
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(root / ("real", "fake")[i % 2] / f"{i:03d}.jpg")


def command_args(command: str, root: Path, out: Path) -> list[str]:
    return {"scan-faces": ["scan", "--faces", "-f", "csv", str(root)],
            "scan": ["scan", "-f", "csv", str(root)],
            "explain": ["explain", "-o", str(out), str(root / "real" / "000.jpg")],
            "eval": ["eval", str(root)]}[command]


def one_run(args, root: Path, out: Path, moment: float) -> dict:
    cmd = [sys.executable, "-m", "fakedet", *command_args(args.command, root, out),
           *(["-w", args.weights] if args.weights else [])]
    # started as from a terminal: with Ctrl-C's default action even where this driver runs as a
    # background job, whose children inherit SIGINT ignored (fakedet then leaves it alone)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < moment and p.poll() is None:
        time.sleep(0.005)
    sent = p.poll() is None
    if sent:
        os.kill(p.pid, args.sig)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        return {"moment_s": round(moment, 3), "status": None, "outcome": "hung"}
    err = err.decode(errors="replace")
    rc = p.returncode
    if "Traceback" in err or "terminate called" in err:
        outcome = "crashed"
    elif rc == 128 + args.sig:
        outcome = "stopped"
    elif rc == -args.sig:
        outcome = "default action"
    elif rc in (0, 1, 3):
        outcome = "finished"
    else:
        outcome = "crashed"
    res = {"moment_s": round(moment, 3), "status": rc, "outcome": outcome, "signal_sent": sent}
    if outcome == "crashed":
        res["stderr_tail"] = err[-1500:]
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--command", choices=("scan-faces", "scan", "explain", "eval"), default="scan-faces")
    ap.add_argument("--signal", choices=("TERM", "INT"), default="TERM")
    ap.add_argument("--from", dest="t_from", type=float, default=0.2, help="earliest moment, s (default 0.2)")
    ap.add_argument("--to", dest="t_to", type=float, default=2.5, help="latest moment, s (default 2.5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-w", "--weights", default=None, help="checkpoint passed to fakedet [default: the shipped one]")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.runs < 1 or not 0 <= args.t_from <= args.t_to:
        ap.error("--runs must be positive and 0 <= --from <= --to")
    args.sig = getattr(signal, "SIG" + args.signal)
    rng = random.Random(args.seed)
    runs = []
    with tempfile.TemporaryDirectory(prefix="fakedet-startup-signals-") as tmp:
        root = Path(tmp) / "images"
        make_folder(root)
        for i in range(args.runs):
            r = one_run(args, root, Path(tmp) / f"out{i}", rng.uniform(args.t_from, args.t_to))
            runs.append(r)
            if r["outcome"] in ("crashed", "hung"):
                print(f"run {i}: {r['outcome']} at {r['moment_s']} s, status {r['status']}\n"
                      f"{r.get('stderr_tail', '')}", flush=True)
    outcomes = ("stopped", "default action", "finished", "crashed", "hung")
    counts = {k: sum(r["outcome"] == k for r in runs) for k in outcomes}
    import fakedet

    summary = {"command": args.command, "signal": "SIG" + args.signal, "runs": len(runs),
               "window_s": [args.t_from, args.t_to], "seed": args.seed, "counts": counts, "fakedet": fakedet.__file__,
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**summary, "runs_detail": runs}, indent=2))
    return 1 if counts["crashed"] or counts["hung"] else 0


if __name__ == "__main__":
    sys.exit(main())
