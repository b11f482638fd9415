#!/usr/bin/env python
"""How often a scan says that a picture has wide plain margins around it
(``fakedet.data.decode.frame_share`` at ``FRAME_SHARE`` or more): on the real images of every set
(all splits; a seeded sample of at most ``--per-set`` each), decoded as a scan decodes them,
where each such note is a false one, and on phone screenshots of test images made as
``experiments/robustness.py --conditions phone`` makes them (the app around the picture, light
and dark, drawn on a perfectly plain background: real apps' backgrounds may be less plain),
where it should be given, and on the same screenshots cut back to the picture, where it should
not.

    python experiments/frame_share.py --json runs/frame_share.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from fakedet.data.decode import FRAME_SHARE, frame_share, load
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import BY_NAME, manifest


def robustness():
    spec = importlib.util.spec_from_file_location("robustness", Path(__file__).with_name("robustness.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-set", type=int, default=300, help="real val images per set")
    ap.add_argument("--shots", type=int, default=20, help="test images per set made into phone screenshots")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import random

    from fakedet.data.preprocess import PreprocessConfig

    cfg = PreprocessConfig()
    out = {"threshold": FRAME_SHARE, "real": {}, "phone": {}}
    noted, measured = [], 0
    for name in BY_NAME:
        rows = sorted((r for r in read_manifest(str(manifest(name))) if r.label == 0), key=lambda r: r.path)
        rows = random.Random(0).sample(rows, min(args.per_set, len(rows)))
        shares = [frame_share(load(r.path, cfg)) for r in rows]
        hits = [(r.path, s) for r, s in zip(rows, shares) if s is not None and s >= FRAME_SHARE]
        n = sum(s is not None for s in shares)
        out["real"][name] = {"images": len(rows), "measured": n, "noted": len(hits)}
        noted += hits
        measured += n
        print(f"{name}: {len(hits)} of {n} real images measured noted (of {len(rows)})", flush=True)
    out["real_noted"] = [{"path": p, "frame": s} for p, s in noted]
    print(f"real images noted: {len(noted)} of {measured} measured")
    phone = robustness().PHONE
    rows = [r for name in BY_NAME for r in read_manifest(str(manifest(name)), "test")[:args.shots]]
    for cond, make in phone.items():
        shares = [frame_share(load(make(load(r.path, cfg)), cfg)) for r in rows]
        n_noted = sum(s is not None and s >= FRAME_SHARE for s in shares)
        out["phone"][cond] = {"images": len(rows), "noted": n_noted}
        print(f"{cond}: {n_noted} of {len(rows)} noted")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
