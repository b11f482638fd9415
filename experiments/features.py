#!/usr/bin/env python
"""Extract the fused feature vector (what the head reads) of every image of every set and split,
plus self-blended pseudo-fakes of the real images of the face sets, for head refits and
leave-one-source-out studies.

    python experiments/features.py --weights weights/fakedet-default.safetensors --out runs/features

Each set's train split is capped at ``--max-per-class`` images per class (a seeded sample); val
and test are whole. The self-blended copies are drawn by ``fakedet.training.selfblend.self_blend``
with a generator seeded by the file name, so a rerun makes the same ones. Images are decoded and
preprocessed exactly as a scan does (fixed patch grid, no augmentation); an image that cannot be
read is left out and counted.
"""

from __future__ import annotations

import argparse
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from fakedet.data import decode as imageio
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import BY_NAME, manifest
from fakedet.model import checkpoint as ckpt
from fakedet.training.selfblend import self_blend

SBI_SEED = 0


def prepare(path: str, sbi: bool, pre):
    try:
        img = imageio.load(path, pre)
        if sbi:
            img = self_blend(img, random.Random(f"{Path(path).name}:{SBI_SEED}"))
        return imageio.preprocess(img, pre)
    except Exception:  # unreadable: left out (counted)
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sets", default=",".join(BY_NAME))
    ap.add_argument("--splits", default="train,val,test")
    ap.add_argument("--max-per-class", type=int, default=4000, help="cap per set, split and class (train only)")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model, meta = ckpt.load(args.weights)
    model.eval().fuse_for_inference()
    pre = model.cfg.preprocess
    args.out.mkdir(parents=True, exist_ok=True)
    pool = ThreadPoolExecutor(2)
    for name in args.sets.split(","):
        for split in args.splits.split(","):
            file = args.out / f"{name}-{split}.npz"
            if file.exists():
                continue
            rows = read_manifest(manifest(name), split=split)
            if split == "train":
                rng = random.Random(f"{name}:cap")
                keep = []
                for lab in (0, 1):
                    cls = [r for r in rows if r.label == lab]
                    keep += cls if len(cls) <= args.max_per_class else rng.sample(cls, args.max_per_class)
                rows = keep
            items = [(r.path, r.label, 0) for r in rows]
            if BY_NAME[name].faces:
                items += [(r.path, 1, 1) for r in rows if r.label == 0]
            t0 = time.time()
            feats, ys, kinds, files = [], [], [], []
            for i in range(0, len(items), args.batch):
                chunk = items[i:i + args.batch]
                prepared = list(pool.map(lambda it: prepare(it[0], it[2] == 1, pre), chunk))
                ok = [(it, p) for it, p in zip(chunk, prepared) if p is not None]
                if not ok:
                    continue
                views = torch.from_numpy(np.stack([p[0] for _, p in ok]))
                patches = torch.from_numpy(np.stack([p[1] for _, p in ok]))
                with torch.inference_mode():
                    f = model.features(views, patches)
                feats.append(f.numpy().astype(np.float32))
                ys += [it[1] for it, _ in ok]
                kinds += [it[2] for it, _ in ok]
                files += [Path(it[0]).name for it, _ in ok]
            np.savez(file, X=np.concatenate(feats), y=np.array(ys, dtype=np.int8),
                     kind=np.array(kinds, dtype=np.int8), names=np.array(files))
            print(f"{name:22s} {split:5s} {len(ys):6d} images ({len(items) - len(ys)} unreadable) "
                  f"{time.time() - t0:6.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
