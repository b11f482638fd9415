#!/usr/bin/env python
"""How a checkpoint scores face edits of a kind it was not trained on: the real test faces of
the face sets against self-blended copies of themselves.

    python experiments/edit_eval.py [--weights FILE]

Each real test image of dfdc_faceswap, lfw_faceswap and stylegan2_faces gets one self-blended
copy (``fakedet.training.selfblend.self_blend_v2``, seeded by its index: one copy of the face, colour-
and sharpness-shifted and slightly moved, blended back through a soft, warped mask around the
centre, which is where these crops have their face), standing in for a pasted or retouched face.
Originals and copies alike are re-saved as JPEG q95, as an edited photo would be, so that
compression does not tell them apart. Prints AUC (originals against their copies) and the share
labelled fake of each at the checkpoint's threshold.
"""

from __future__ import annotations

import argparse
import io
import random
import sys

from PIL import Image

from fakedet import Detector
from fakedet.data.labelled import LabelledImage, read_manifest
from fakedet.data.sets import data_root, manifest, names
from fakedet.evaluation.report import report
from fakedet.training.selfblend import self_blend_v2

SETS = names(faces=True)


def jpeg95(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    buf.seek(0)
    return Image.open(buf)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(data_root()))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--split", default="test")
    args = ap.parse_args(argv)

    det = Detector.load(args.weights, device="cpu")
    datasets = {}
    for name in SETS:
        rows = sorted((r for r in read_manifest(manifest(name, args.data), args.split)
                       if r.label == 0), key=lambda r: r.path)
        pairs = []
        for i, r in enumerate(rows):
            img = Image.open(r.path).convert("RGB")
            pairs.append(LabelledImage(jpeg95(img), 0))
            pairs.append(LabelledImage(jpeg95(self_blend_v2(img, random.Random(i))), 1))
        datasets[name] = pairs
    rep = report(det, datasets)
    if rep.sets["all"]["errors"]:
        raise SystemExit(f"{rep.sets['all']['errors']} images could not be scored")
    print(f"weights {args.weights or 'shipped'}; threshold {det.threshold:.4f}; {args.split} split\n")
    print("| set | real images | AUC (original vs self-blended copy) | originals labelled fake "
          "| copies labelled fake |")
    print("|---|---|---|---|---|")
    for name in SETS + ["all"]:
        s = rep.sets[name]
        print(f"| {name} | {s['n_real']} | {s['auc']:.3f} | {s['fpr']:.3f} | {s['tpr']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
