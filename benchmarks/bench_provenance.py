#!/usr/bin/env python
"""What reading provenance evidence costs a scan: images/s with the reader on and off.

    python benchmarks/bench_provenance.py                 # 1024 px JPEGs without metadata
    python benchmarks/bench_provenance.py --size 12mp --n 60 --rounds 3

The same images are scored by ``Detector.predict`` with ``provenance=True`` and ``False`` in
alternating rounds (on, off, on, off, ...), so that a machine whose load changes during the run
treats both alike; the figure is the ratio of the medians. It also times the reader alone per
file (metadata, then the watermark when the ``watermark`` extra is installed, which runs on the
decoded pixels). The images are generated (fakedet.evaluation.synthetic) and carry no metadata:
the reader's cost on the images most scans see. Results are printed and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fakedet import Detector
from fakedet.data import provenance, watermark
from fakedet.evaluation.synthetic import make_images


def rate(det: Detector, paths: list[str]) -> float:
    t0 = time.perf_counter()
    results = det.predict(paths)
    elapsed = time.perf_counter() - t0
    assert len(results) == len(paths) and all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return len(paths) / elapsed


def reader_cost(paths: list[str]) -> dict:
    """Microseconds per file of the metadata reader on the file's bytes, and of the watermark
    reader on its decoded pixels (None without the extra)."""
    blobs = [Path(p).read_bytes() for p in paths[:50]]
    t0 = time.perf_counter()
    for _ in range(20):
        for b in blobs:
            provenance.read_evidence(b)
    meta_us = (time.perf_counter() - t0) / (20 * len(blobs)) * 1e6
    wm_ms = None
    if watermark.available():
        arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths[:10]]
        t0 = time.perf_counter()
        for a in arrays:
            watermark.read_watermark(a)
        wm_ms = (time.perf_counter() - t0) / len(arrays) * 1e3
    return {"metadata_us_per_file": round(meta_us, 1), "watermark_ms_per_image": wm_ms and round(wm_ms, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1024", choices=["face", "1024", "12mp"])
    ap.add_argument("--n", type=int, default=200, help="images (default 200)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of each setting (default 5)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--dir", default=None, help="where to generate images (default: a temp folder)")
    ap.add_argument("--json", default="bench_provenance.json", help="write results here")
    args = ap.parse_args(argv)

    folder = Path(args.dir or tempfile.mkdtemp(prefix="fakedet-prov-"))
    paths = make_images(folder / args.size, args.size, args.n)
    dets = {on: Detector.load(args.weights, device=args.device, provenance=on) for on in (True, False)}
    rate(dets[True], paths[:32])  # warm-up: first-call costs, page cache
    rate(dets[False], paths[:32])
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for on in (True, False):
            rates[on].append(rate(dets[on], paths))
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        commit = None
    out = {
        "size": args.size, "n": len(paths), "rounds": args.rounds, "device": args.device,
        "images_per_s_reader_on": round(on, 2), "images_per_s_reader_off": round(off, 2),
        "ratio_on_off": round(on / off, 4),
        "rounds_on": [round(x, 2) for x in rates[True]], "rounds_off": [round(x, 2) for x in rates[False]],
        "watermark_extra": watermark.available(), "c2pa_extra": provenance.c2pa_available(),
        **reader_cost(paths),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "commit": commit,
    }
    print(f"{args.size} JPEGs without metadata, {len(paths)} images x {args.rounds} rounds each, {args.device}:")
    print(f"  reader on  {on:8.2f} img/s   (rounds: {out['rounds_on']})")
    print(f"  reader off {off:8.2f} img/s   (rounds: {out['rounds_off']})")
    print(f"  on / off   {on / off:8.4f}")
    print(f"  metadata reader alone: {out['metadata_us_per_file']} us per file; watermark reader: "
          + (f"{out['watermark_ms_per_image']} ms per image" if out["watermark_ms_per_image"] is not None
             else "extra not installed"))
    Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
