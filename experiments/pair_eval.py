#!/usr/bin/env python
"""Score test splits with two checkpoints and with their combination (the sum of their calibrated
logits, i.e. the product of their odds), and print each one's AUC per set.

    python experiments/pair_eval.py runs/ablation-all/final.safetensors \\
        runs/pseudo-sbi_dfdc/final.safetensors --sets lfw_faceswap,stylegan2_faces,dfdc_faceswap

A research aid: it asks whether a specialist (for example a model that learned self-blended
faces only) adds to a general model on sets that neither has seen.
"""

from __future__ import annotations

import argparse

import numpy as np

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import PAIRED, data_root, manifest, names
from fakedet.evaluation.metrics import auc
from fakedet.evaluation.report import score_labelled


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--sets", default=",".join(names(PAIRED)))
    ap.add_argument("--split", default="test")
    ap.add_argument("--data", default=str(data_root()))
    args = ap.parse_args(argv)
    dets = [Detector.load(w, device="cpu") for w in (args.a, args.b)]
    print(f"A = {args.a}\nB = {args.b}\n")
    print("| set | n | AUC A | AUC B | AUC A+B (sum of logits) |")
    print("|---|---|---|---|---|")
    for name in args.sets.split(","):
        images = read_manifest(manifest(name, args.data), args.split)
        scored = [score_labelled(d, images) for d in dets]
        if any(s[2] for s in scored):
            raise SystemExit(f"{name}: unreadable images: {scored[0][2][:3] or scored[1][2][:3]}")
        y = scored[0][0]
        za, zb = logit(scored[0][1]), logit(scored[1][1])
        print(f"| {name} | {len(y)} | {auc(y, za):.3f} | {auc(y, zb):.3f} | {auc(y, za + zb):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
