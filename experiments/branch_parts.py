#!/usr/bin/env python
"""How well does one branch's part of the head's logit rank a fake set above each real source?

The head is linear over the fused features (backbone, colour, texture; see
``FakeDetector.features``), so a logit splits into one part per branch. This ranks the fake images
of ``--fake`` against the real images of each of ``--reals`` by the texture part plus the bias
(``w_t·f_t + b``) and by the whole logit, on features written by ``experiments/features.py``
from the same checkpoint. Diagnostic only.

    python experiments/features.py --weights runs/trust/fresh_without_ffpp_unsplash_sd15texture/final.safetensors \\
        --out runs/knn/g2feat --splits val \\
        --sets \\
        sd15_finetunes,unsplash_portraits,imagenet_real_photos,utkface_real,lfw_faceswap,dfdc_faceswap,cifake_sd14,stylegan2_faces
    python experiments/branch_parts.py --weights runs/trust/fresh_without_ffpp_unsplash_sd15texture/final.safetensors \\
        --features runs/knn/g2feat --fake sd15_finetunes \\
        --reals \\
        unsplash_portraits,imagenet_real_photos,utkface_real,lfw_faceswap,dfdc_faceswap,cifake_sd14,stylegan2_faces
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fakedet.evaluation.metrics import auc
from fakedet.model import checkpoint as ckpt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="the checkpoint the features came from")
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--fake", required=True, help="the set whose fake images are ranked")
    ap.add_argument("--reals", required=True, help="comma-separated sets whose real images they are ranked against")
    ap.add_argument("--split", default="val")
    args = ap.parse_args(argv)
    model, _ = ckpt.load(args.weights)
    if model.texture is None:
        ap.error(f"{args.weights}: no texture branch")
    w = model.head.weight.detach().numpy()[0]
    b = float(model.head.bias.detach())
    td = model.cfg.texture_dim

    def logits(name: str, label: int):
        z = np.load(args.features / f"{name}-{args.split}.npz")
        keep = (z["y"] == label) & (z["kind"] == 0)  # genuine images, not self-blends
        x = z["X"][keep]
        return x[:, -td:] @ w[-td:] + b, x @ w + b

    fake_tex, fake_all = logits(args.fake, 1)
    print(f"{len(fake_tex)} fake images of {args.fake} ({args.split}) against each source's real images")
    print("| real source | n | AUC, texture part + bias | AUC, whole logit |\n|---|---|---|---|")
    for name in args.reals.split(","):
        tex, whole = logits(name, 0)
        y = np.r_[np.ones(len(fake_tex)), np.zeros(len(tex))]
        print(f"| {name} | {len(tex)} | {auc(y, np.r_[fake_tex, tex]):.3f} | {auc(y, np.r_[fake_all, whole]):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
