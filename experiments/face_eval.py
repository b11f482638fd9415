#!/usr/bin/env python
"""Faces as a small part of a photo: detector recall/speed and whole-image vs face scoring.

    python experiments/face_eval.py --n 60 --json face_eval.json

Builds composites (fakedet.evaluation.composites) from the *test* splits of the face sets: each
face crop, real or fake, is pasted at its native resolution at a random place into a real
background photo (imagenet_real_photos, upscaled to 1024 px on the long side, drawn alike for
both classes) and saved as JPEG q95, so the face covers about 5-10 % of the pixels. It then reports:

* face-detector recall (a detected box whose centre lies inside the pasted crop) and ms/image,
  for fakedet's MTCNN and, when ``opencv-python-headless<5`` is installed, OpenCV's Haar cascade;
* AUC, and TPR and FPR at the checkpoint's thresholds, of whole-image scoring against
  ``--faces`` scoring (which uses the checkpoint's face-mode threshold when it has one), per set
  and over all composites, with the shipped weights (or ``--weights``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fakedet import Detector
from fakedet.data.sets import data_root
from fakedet.evaluation.composites import FACE_SETS, build, hit
from fakedet.evaluation.metrics import summarize
from fakedet.model.faces import DETECT_MAX_SIDE, find_faces


def eval_mtcnn(items):
    t0 = time.perf_counter()
    hits = 0
    for it in items:
        found = find_faces(Image.open(it["path"]).convert("RGB"))
        hits += hit([b for b, _ in found], it["rect"])
    return {"recall": hits / len(items), "ms_per_image": 1000 * (time.perf_counter() - t0) / len(items)}


def eval_haar(items):
    try:
        import cv2

        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    except (ImportError, AttributeError):
        return None
    t0 = time.perf_counter()
    hits = 0
    for it in items:
        img = Image.open(it["path"]).convert("L")
        s = min(1.0, DETECT_MAX_SIDE / max(img.size))
        if s < 1:
            img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.BILINEAR)
        found = cascade.detectMultiScale(np.asarray(img), scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))
        boxes = [(x / s, y / s, (x + w) / s, (y + h) / s) for x, y, w, h in (found if len(found) else [])]
        hits += hit(boxes, it["rect"])
    return {"recall": hits / len(items), "ms_per_image": 1000 * (time.perf_counter() - t0) / len(items),
            "opencv": cv2.__version__}


def score(items, weights, faces: bool, workers, expert="auto"):
    det = Detector.load(weights, device="cpu", faces=faces, workers=workers, expert=expert)
    res = det.predict([it["path"] for it in items])
    assert all(r.ok for r in res), [r.error for r in res if not r.ok][:3]
    p = np.array([r.p_fake for r in res])
    y = np.array([it["label"] for it in items])
    names = np.array([it["set"] for it in items])
    out = {name: summarize(y[names == name], p[names == name], det.threshold) for name in FACE_SETS}
    out["all"] = summarize(y, p, det.threshold)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(data_root()))
    ap.add_argument("--n", type=int, default=60, help="composites per set (half real, half fake)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--expert", default="auto", help="the face expert file for --faces [default: the shipped one]")
    ap.add_argument("--json", default="face_eval.json")
    args = ap.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="fakedet-faces-"))
    try:
        items = build(Path(args.data), out, args.n, args.seed)
        frac = np.array([it["face_fraction"] for it in items])
        res = {"composites": len(items), "face_fraction_median": float(np.median(frac)),
               "detectors": {"mtcnn": eval_mtcnn(items)}}
        haar = eval_haar(items)
        if haar:
            res["detectors"]["haar"] = haar
        res["whole_image"] = score(items, args.weights, False, args.workers)
        res["faces"] = score(items, args.weights, True, args.workers, expert=args.expert)  # when it pairs
        res["faces_network"] = score(items, args.weights, True, args.workers, expert=None)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    Path(args.json).write_text(json.dumps(res, indent=2))

    print(f"{len(items)} composites from the test splits of {', '.join(FACE_SETS)}; "
          f"median face share of the picture {res['face_fraction_median']:.1%}\n")
    print("| detector | recall | ms / image |\n|---|---|---|")
    for k, v in res["detectors"].items():
        print(f"| {k} | {v['recall']:.3f} | {v['ms_per_image']:.0f} |")
    tw, tf = res["whole_image"]["all"]["threshold"], res["faces"]["all"]["threshold"]
    print(f"\nthresholds: whole image {tw:.4f}, face mode {tf:.4f} (the checkpoint's own)\n")
    print("| set | whole-image AUC | --faces AUC | --faces --no-face-expert AUC | whole-image TPR | "
          "whole-image FPR | --faces TPR | --faces FPR | --no-face-expert TPR | --no-face-expert FPR |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in FACE_SETS + ["all"]:
        a, b, c = res["whole_image"][name], res["faces"][name], res["faces_network"][name]
        print(f"| {name} | {a['auc']:.3f} | {b['auc']:.3f} | {c['auc']:.3f} | {a['tpr']:.3f} | {a['fpr']:.3f} | "
              f"{b['tpr']:.3f} | {b['fpr']:.3f} | {c['tpr']:.3f} | {c['fpr']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
