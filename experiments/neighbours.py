#!/usr/bin/env python
"""Which training images do a held-out set's real images resemble, in the model's own features?

Reads the fused feature vectors written by ``experiments/features.py`` and, for every real image
of the query set, finds its nearest training images (cosine similarity of the features after
standardising each dimension over the pool). Prints, per (set, class), the share of the
neighbours next to that cell's share of the pool, so that a cell the query images are drawn to
stands out. Diagnostic only: it trains nothing.

    python experiments/features.py --weights weights/fakedet-default.safetensors --out runs/knn/feat \\
        --sets \\
        dfdc_faceswap,lfw_faceswap,cifake_sd14,stylegan2_faces,imagenet_real_photos,sd15_finetunes,unsplash_portraits \\
        --splits train --max-per-class 600
    python experiments/neighbours.py --features runs/knn/feat --query unsplash_portraits \\
        --pool dfdc_faceswap,lfw_faceswap,cifake_sd14,stylegan2_faces,imagenet_real_photos,sd15_finetunes

``--montage FILE`` also saves the first eight query images above their nearest neighbour (a
self-blend shown as the real image it was made from).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from fakedet.data.sets import manifest


def load(features: Path, name: str, split: str):
    z = np.load(features / f"{name}-{split}.npz")
    kind = {0: "real", 1: "fake"}
    tags = [f"{name}:{'self-blend' if k else kind[int(y)]}" for y, k in zip(z["y"], z["kind"])]
    return z["X"], np.array(tags), z["names"], z["y"], z["kind"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True, help="experiments/features.py --out")
    ap.add_argument("--query", required=True, help="set whose real images are looked up")
    ap.add_argument("--pool", required=True, help="comma-separated sets to search")
    ap.add_argument("--split", default="train")
    ap.add_argument("-k", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--montage", type=Path)
    args = ap.parse_args(argv)

    parts = [load(args.features, name, args.split) for name in args.pool.split(",")]
    pool = np.concatenate([p[0] for p in parts])
    tags = np.concatenate([p[1] for p in parts])
    qx, _, qnames, qy, qkind = load(args.features, args.query, args.split)
    keep = (qy == 0) & (qkind == 0)
    qx, qnames = qx[keep], qnames[keep]
    mu, sd = pool.mean(0), pool.std(0) + 1e-6

    def unit(x):
        x = (x - mu) / sd
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    sim = unit(qx) @ unit(pool).T
    order = np.argsort(-sim, axis=1)
    base = Counter(tags)
    print(f"{len(qx)} real images of {args.query} against {len(pool)} images of {args.pool} ({args.split})")
    for k in args.k:
        near = Counter(tags[order[:, :k]].ravel())
        print(f"\nnearest {k}:  {'cell':34s} {'share of neighbours':>20s} {'share of pool':>14s}")
        for tag, n in near.most_common():
            print(f"{'':13s}{tag:34s} {n / (k * len(qx)):20.3f} {base[tag] / len(pool):14.3f}")

    if args.montage:
        from PIL import Image

        names = np.concatenate([p[2] for p in parts])
        labels = np.concatenate([p[3] for p in parts])
        kinds = np.concatenate([p[4] for p in parts])
        side, n = 160, min(8, len(qx))
        sheet = Image.new("RGB", (side * n, 2 * side))
        for i in range(n):
            j = order[i, 0]
            q = Path(manifest(args.query)).parent / "real" / qnames[i]
            t = (Path(manifest(tags[j].split(":")[0])).parent / ("fake" if labels[j] and not kinds[j] else "real")
                 / names[j])
            for row, path in enumerate((q, t)):
                with Image.open(path) as im:
                    sheet.paste(im.convert("RGB").resize((side, side)), (side * i, side * row))
        sheet.save(args.montage)
        print(f"\nwrote {args.montage}: query images above their nearest neighbour")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
