#!/usr/bin/env python
"""Would the face expert help the default scan without a face finder? A probe, val only.

    python experiments/expert_whole_image.py --json runs/expert_whole_image.json

The default scan runs no face detector. This scores every val image of each set twice: with the
shipped network (whole image, as ``fakedet scan`` does) and with the shipped face expert on the
image's centred square (the largest one; the expert's own resizes), as if the whole image were
the face square its training used; then the fused logit ``fakedet.model.expert.fuse`` for each
weight, with the expert file's norms. It prints each paired set's val AUC per weight and, for each
real source, the median network logit and the median fused logit's shift at each weight (the
fused score moves real images that the network finds plainly real towards the middle). Nothing
here ships; it says whether a face gate for the default scan is worth building.

    python experiments/expert_whole_image.py --speed --json runs/expert_whole_image_speed.json

``--speed`` (a probe of cost, no scores) times, on the first 70 val images of each face set
(ffpp_faces, dfdc_faceswap, lfw_faceswap; face crops, where the network's share of the time is
largest), the default scan through the API (``Detector.predict``, the model loaded, one warm-up
pass, the median of ``--rounds``) and, apart, what the expert adds per image: its centred-square
crop from the decoded image and its forward pass in batches of 32 (decoding not counted again).
Their sum against the scan alone is the ratio a default scan fused with the expert could reach at
best, against the issue's bound of 0.60 of today's images/s.

``--size S`` feeds the expert an S px square instead of its own input size (no retraining; the
fusion keeps the norms the expert file holds): docs/decisions/2026-12-05-a-smaller-input-for-the-face-expert.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.evaluation.metrics import auc
from fakedet.model import expert as fx

SETS = ("dfdc_faceswap", "lfw_faceswap", "ffpp_faces", "stylegan2_faces", "cifake_sd14",
        "imagenet_real_photos", "utkface_real", "unsplash_portraits", "sd15_finetunes")
GRID = (0.0, 0.2, 0.4, 0.5, 0.7, 1.0)
WHOLE = {"ratio": 1.0, "dx": 0.0, "dy": 0.0}  # the image's own centred square


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="the network [default: the shipped one]")
    ap.add_argument("--expert", default=None, help="[default: the shipped face expert]")
    ap.add_argument("--split", default="val", choices=("val", "train"))
    ap.add_argument("--size", type=int, default=None,
                    help="the expert's input side, px [default: the expert file's own]; its norms stay")
    ap.add_argument("--speed", action="store_true", help="time the scan and the expert's added cost instead")
    ap.add_argument("--rounds", type=int, default=3, help="--speed: timed passes of each")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.speed:
        return speed(args)
    det = Detector.load(args.weights, device="cpu", provenance=False)
    model, meta = fx.load(Path(args.expert) if args.expert else fx.default_expert_path())
    size = args.size or meta.size
    t = det.temperature
    out = {}
    for name in SETS:
        items = read_manifest(manifest(name), split=args.split)
        recs = det.predict([im.path for im in items])
        bad = [r.error for r in recs if not r.ok]
        if bad:
            sys.exit(f"{name}: {len(bad)} images could not be scored: {bad[:3]}")
        p = np.clip([r.p_fake for r in recs], 1e-15, 1 - 1e-15)
        ln = t * (np.log(p) - np.log1p(-p))
        crops = []
        for im in items:
            with Image.open(im.path) as img:
                img = img.convert("RGB")
                crops.append(fx.expert_crop(img, [0, 0, img.width, img.height], WHOLE, size))
        le = fx.expert_logits(model, np.stack(crops))
        y = np.array([im.label for im in items])
        fused = {w: fx.fuse(ln, le, dataclasses.replace(meta, weight=w)) for w in GRID}
        r = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
        if r["n_real"] and r["n_fake"]:
            r["auc"] = {str(w): auc(y, s) for w, s in fused.items()}
        if r["n_real"]:
            r["median_real_logit"] = {str(w): float(np.median(s[y == 0])) for w, s in fused.items()}
        out[name] = r
    print(f"{args.split} AUC by the expert's weight w ({size} px input; w = 0: the network alone; 1: the expert alone)")
    print("| set | " + " | ".join(f"w {w}" for w in GRID) + " |\n|---|" + "---|" * len(GRID))
    for name, r in out.items():
        if "auc" in r:
            print(f"| {name} | " + " | ".join(f"{r['auc'][str(w)]:.3f}" for w in GRID) + " |")
    print("\nmedian logit of the real images, network units")
    print("| source | " + " | ".join(f"w {w}" for w in GRID) + " |\n|---|" + "---|" * len(GRID))
    for name, r in out.items():
        if "median_real_logit" in r:
            print(f"| {name} | " + " | ".join(f"{r['median_real_logit'][str(w)]:+.2f}" for w in GRID) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "weights": str(det.weights_path), "size": size,
                                               "grid": GRID, "sets": out}, indent=2))
    return 0


def speed(args) -> int:
    import platform
    import statistics
    import time

    import torch

    paths = [im.path for name in ("ffpp_faces", "dfdc_faceswap", "lfw_faceswap")
             for im in read_manifest(manifest(name), split="val")[:70]]
    det = Detector.load(args.weights, device="cpu")  # the default scan's settings (provenance too)
    model, meta = fx.load(Path(args.expert) if args.expert else fx.default_expert_path())
    size = args.size or meta.size
    images = []
    for p in paths:
        with Image.open(p) as img:
            images.append(img.convert("RGB"))

    def expert_pass() -> None:
        for i in range(0, len(images), 32):
            crops = [fx.expert_crop(img, [0, 0, img.width, img.height], WHOLE, size) for img in images[i:i + 32]]
            fx.expert_logits(model, np.stack(crops))

    det.predict(paths)
    expert_pass()
    scan_s, expert_s = [], []
    for _ in range(max(1, args.rounds)):
        t = time.perf_counter()
        det.predict(paths)
        scan_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        expert_pass()
        expert_s.append(time.perf_counter() - t)
    scan, extra = statistics.median(scan_s), statistics.median(expert_s)
    out = {"images": len(paths), "rounds": args.rounds, "size": size, "scan_img_s": len(paths) / scan,
           "expert_ms_per_img": 1000 * extra / len(paths), "fused_img_s_at_best": len(paths) / (scan + extra),
           "ratio_at_best": scan / (scan + extra), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    print(f"default scan {out['scan_img_s']:.1f} img/s; the expert adds {out['expert_ms_per_img']:.2f} ms/img; "
          f"fused at best {out['fused_img_s_at_best']:.1f} img/s: ratio {out['ratio_at_best']:.2f} (bound 0.60)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
