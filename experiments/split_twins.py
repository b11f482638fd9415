#!/usr/bin/env python
"""Test images with a near-identical image in the train split: how many, and the test AUC with
and without them (a measure of how far a split by video or group still leaks a person or a room).

    python experiments/split_twins.py --set dfdc_faceswap --json runs/split_twins_dfdc.json

Each image is shrunk to a 24x24 grey thumbnail, normalised to zero mean and unit variance; a test
image's twin score is its highest correlation with any train image of the same set (either
class). The shipped weights score the test split through the API, as ``fakedet eval`` does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import BY_NAME, manifest
from fakedet.evaluation.metrics import auc
from fakedet.model import checkpoint as ckpt


def thumb(path) -> np.ndarray:
    with Image.open(path) as im:
        a = np.asarray(im.convert("L").resize((24, 24), Image.BILINEAR), np.float32).ravel()
    return (a - a.mean()) / (a.std() + 1e-6)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True, choices=sorted(BY_NAME))
    ap.add_argument("--weights", default=None, help="[default: the shipped weights]")
    ap.add_argument("--at", type=float, nargs="+", default=[0.9, 0.95], help="correlations counted as twins")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from fakedet import Detector
    from fakedet.evaluation.report import score_labelled

    rows = read_manifest(str(manifest(args.set)))
    train = [r for r in rows if r.split == "train"]
    test = [r for r in rows if r.split == "test"]
    det = Detector.load(args.weights, provenance=False)
    y, p, errors = score_labelled(det, test)
    y, p = np.asarray(y), np.asarray(p)
    failed = {path for path, _ in errors}
    test = [r for r in test if r.path not in failed]  # the scored ones, in order, as y and p
    if errors:
        print(f"{len(errors)} test images could not be scored and are left out")
    train = [r for r in train if r.path not in failed]
    tr = np.stack([thumb(r.path) for r in train])
    best = np.concatenate([(np.stack([thumb(r.path) for r in test[i:i + 256]]) @ tr.T).max(1)
                           for i in range(0, len(test), 256)]) / tr.shape[1]
    out = {"set": args.set, "n_train": len(train), "n_test": len(test),
           "n_test_real": int((y == 0).sum()), "weights_sha256": ckpt.sha256(det.weights_path),
           "auc_all": auc(y, p), "at": {}}
    print(f"{args.set}: {len(test)} test images ({out['n_test_real']} real) against {len(train)} train; "
          f"test AUC {out['auc_all']:.3f}")
    for q in args.at:
        twin = best >= q
        r = {"test_with_twin": int(twin.sum()), "real_test_with_twin": int((twin & (y == 0)).sum()),
             "auc_with_twin": auc(y[twin], p[twin]), "auc_without": auc(y[~twin], p[~twin])}
        out["at"][str(q)] = {k: (None if v != v else v) for k, v in r.items()}
        print(f"  correlation >= {q}: {r['test_with_twin']} test images with a train twin "
              f"({r['real_test_with_twin']} real); AUC {r['auc_with_twin']:.3f} with, {r['auc_without']:.3f} without")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, allow_nan=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
