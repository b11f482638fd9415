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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    det = Detector.load(args.weights, device="cpu", provenance=False)
    model, meta = fx.load(Path(args.expert) if args.expert else fx.default_expert_path())
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
                crops.append(fx.expert_crop(img, [0, 0, img.width, img.height], WHOLE, meta.size))
        le = fx.expert_logits(model, np.stack(crops))
        y = np.array([im.label for im in items])
        fused = {w: fx.fuse(ln, le, dataclasses.replace(meta, weight=w)) for w in GRID}
        r = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
        if r["n_real"] and r["n_fake"]:
            r["auc"] = {str(w): auc(y, s) for w, s in fused.items()}
        if r["n_real"]:
            r["median_real_logit"] = {str(w): float(np.median(s[y == 0])) for w, s in fused.items()}
        out[name] = r
    print(f"{args.split} AUC by the expert's weight w (w = 0: the network alone; 1: the expert alone)")
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
        Path(args.json).write_text(json.dumps({"split": args.split, "weights": str(det.weights_path),
                                               "grid": GRID, "sets": out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
