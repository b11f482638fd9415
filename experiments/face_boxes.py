#!/usr/bin/env python
"""Finds the largest face in every real image of some sets, for self-blended pseudo-fakes (or in
every image, real and fake, with ``--all-labels``, for recipes that crop a set's images to their
faces: ``train.face_crop_sets``).

    python experiments/face_boxes.py --sets dfdc_faceswap,lfw_faceswap,stylegan2_faces \
        --out runs/face_boxes.json

Runs fakedet's own face detector (MTCNN, ``fakedet.model.faces``) on the real images of the given
splits (default: train) and writes ``{"<set>/<file name>": [x0, y0, x1, y1], ...}``; images
without a face are left out. ``experiments/train.py`` reads the file named by a recipe's
``train.sbi_boxes`` and blends each self-blended pseudo-fake through a mask around that face
instead of a fixed ellipse at the centre of the image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import data_root, manifest


def _init():
    import torch

    torch.set_num_threads(1)


def _largest_face(job):
    key, path = job
    from PIL import Image

    from fakedet.model import faces

    with Image.open(path) as im:
        found = faces.find_faces(im.convert("RGB"))
    return key, (found[0][0] if found else None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(data_root()))
    ap.add_argument("--sets", required=True, help="comma-separated set names")
    ap.add_argument("--splits", default="train", help="comma-separated splits (default: train)")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--all-labels", action="store_true", help="fake images too, not only the real ones")
    args = ap.parse_args(argv)

    root, splits = Path(args.data), args.splits.split(",")
    jobs = []
    for name in args.sets.split(","):
        for split in splits:
            for row in read_manifest(manifest(name, root), split):
                if row.label == 0 or args.all_labels:
                    jobs.append((f"{name}/{Path(row.path).name}", row.path))
    t0 = time.time()
    with Pool(args.workers, initializer=_init) as pool:
        found = dict(pool.imap(_largest_face, jobs, chunksize=16))
    boxes = {k: v for k, v in sorted(found.items()) if v is not None}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(boxes))
    print(f"{len(boxes)} of {len(jobs)} {'' if args.all_labels else 'real '}images have a face "
          f"({time.time() - t0:.0f} s) -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
