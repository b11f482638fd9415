#!/usr/bin/env python
"""Where a checkpoint's score for crisp portraits comes from (docs/decisions/2026-12-01-trust-continued.md).

    python experiments/portrait_probe.py --weights weights/fakedet-default.safetensors

1. The head is linear over the concatenated backbone, colour and texture features, so each
   branch's share of the logit is its features times its head weights. Printed: the median
   share per branch for up to ``--n`` images of unsplash_portraits (real), stylegan2_faces
   (real and fake) and utkface_real (all splits; a seeded sample).
2. The median ``p_fake`` and the share at or above ``--at`` of the unsplash_portraits images as
   they are, resized to 300 px, and cropped to a square of 1.3x and 2.2x their MTCNN face box
   (resized to 300 px, JPEG q92).
"""

from __future__ import annotations

import argparse
import io
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fakedet.data import decode as imageio
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.model import checkpoint as ckpt


def branch_shares(model, paths, pre) -> np.ndarray:
    """(n, 3): the backbone's, colour branch's and texture branch's parts of each logit."""
    w = model.head.weight.detach()[0]
    nb = model.backbone.num_features
    nc = model.cfg.colour_dim if model.colour is not None else 0
    out = []
    for i in range(0, len(paths), 32):
        ims = [imageio.preprocess(imageio.load(p, pre), pre) for p in paths[i:i + 32]]
        view = torch.stack([torch.as_tensor(v) for v, _ in ims])
        patches = torch.stack([torch.as_tensor(p) for _, p in ims])
        with torch.no_grad():
            c = model.features(view, patches) * w
        out.append(torch.stack([c[:, :nb].sum(1), c[:, nb:nb + nc].sum(1), c[:, nb + nc:].sum(1)], 1))
    return torch.cat(out).numpy()


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(ckpt.default_weights_path()))
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--at", type=float, default=0.981120, help="a threshold to count scores at or above")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model, _ = ckpt.load(args.weights)
    model.eval()
    pre = model.cfg.preprocess
    rng = random.Random(0)

    def sample(name, label=None):
        paths = [x.path for x in read_manifest(manifest(name)) if label is None or x.label == label]
        return rng.sample(paths, min(args.n, len(paths)))

    print("median part of the logit (head bias %.3f):" % model.head.bias.item())
    for title, paths in (("unsplash_portraits real", sample("unsplash_portraits")),
                         ("stylegan2_faces real", sample("stylegan2_faces", 0)),
                         ("stylegan2_faces fake", sample("stylegan2_faces", 1)),
                         ("utkface_real real", sample("utkface_real"))):
        c = np.median(branch_shares(model, paths, pre), axis=0)
        print(f"  {title:24s} backbone {c[0]:+7.2f}  colour {c[1]:+6.2f}  texture {c[2]:+6.2f}")

    from fakedet import Detector
    from fakedet.model.faces import MTCNN

    det = Detector.load(args.weights, provenance=False)
    mtcnn = MTCNN.load()
    paths = [x.path for x in read_manifest(manifest("unsplash_portraits"))]
    versions = {"as they are": [], "resized to 300 px": [], "face box x1.3": [], "face box x2.2": []}
    for p in paths:
        img = Image.open(p).convert("RGB")
        versions["as they are"].append(Path(p).read_bytes())
        versions["resized to 300 px"].append(jpeg(img.resize((300, 300), Image.LANCZOS)))
        boxes = mtcnn.detect(np.asarray(img))
        if len(boxes):
            x0, y0, x1, y1 = boxes[0][:4]
            cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
            for key, m in (("face box x1.3", 1.3), ("face box x2.2", 2.2)):
                h = side * m / 2
                box = (int(max(0, cx - h)), int(max(0, cy - h)),
                       int(min(img.width, cx + h)), int(min(img.height, cy + h)))
                versions[key].append(jpeg(img.crop(box).resize((300, 300), Image.LANCZOS)))
    print(f"unsplash_portraits, all splits, p_fake (share at or above {args.at}):")
    for key, data in versions.items():
        p = np.array([r.p_fake for r in det.predict(data) if r.error is None])
        print(f"  {key:18s} n={len(p):4d}  median {np.median(p):.3f}  share {np.mean(p >= args.at):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
