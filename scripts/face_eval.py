#!/usr/bin/env python
"""Faces as a small part of a photo: detector recall/speed and whole-image vs face scoring.

    python scripts/face_eval.py --n 60 --json face_eval.json

Builds composites from the *test* splits of the face sets in ../shared/data: each face crop,
real or fake, is pasted at its native resolution at a random place into a real background photo
(imagenet_real_photos, upscaled to 1024 px on the long side, drawn alike for both classes) and
saved as JPEG q95, so the face covers about 5-10 % of the pixels. It then reports:

* face-detector recall (a detected box whose centre lies inside the pasted crop) and ms/image,
  for fakedet's MTCNN and, when ``opencv-python-headless<5`` is installed, OpenCV's Haar cascade;
* AUC, and TPR and FPR at the checkpoint's thresholds, of whole-image scoring against
  ``--faces`` scoring (which uses the checkpoint's face-mode threshold when it has one), per set
  and over all composites, with the shipped weights (or ``--weights``).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fakedet import Detector  # noqa: E402
from fakedet.model.faces import DETECT_MAX_SIDE, find_faces  # noqa: E402
from fakedet.evaluation.metrics import summarize  # noqa: E402

FACE_SETS = ["dfdc_faceswap", "lfw_faceswap", "stylegan2_faces"]


def rows(root: Path, name: str, split: str):
    with open(root / name / "manifest.csv") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def build(root: Path, out: Path, n: int, seed: int, split: str = "test", bg_splits=("test", "val")):
    """Composites of ``split`` face crops on real backgrounds from ``bg_splits`` of imagenet_real_photos."""
    rng = random.Random(seed)
    bgs = [root / "imagenet_real_photos" / r["file"] for s in bg_splits for r in rows(root, "imagenet_real_photos", s)]
    items = []
    for name in FACE_SETS:
        for label in (0, 1):
            cand = [r for r in rows(root, name, split) if int(r["label"]) == label]
            for r in rng.sample(cand, min(n // 2, len(cand))):
                face = Image.open(root / name / r["file"]).convert("RGB")
                bg = Image.open(rng.choice(bgs)).convert("RGB")
                s = 1024 / max(bg.size)
                bg = bg.resize((round(bg.width * s), round(bg.height * s)), Image.Resampling.BICUBIC)
                if face.width >= bg.width or face.height >= bg.height:
                    continue
                x, y = rng.randint(0, bg.width - face.width), rng.randint(0, bg.height - face.height)
                bg.paste(face, (x, y))
                path = out / f"{name}_{label}_{len(items):05d}.jpg"
                bg.save(path, quality=95)
                items.append({"path": str(path), "label": label, "set": name,
                              "rect": (x, y, x + face.width, y + face.height),
                              "face_fraction": face.width * face.height / (bg.width * bg.height)})
    return items


def hit(boxes, rect) -> bool:
    x0, y0, x1, y1 = rect
    return any(x0 <= (b[0] + b[2]) / 2 <= x1 and y0 <= (b[1] + b[3]) / 2 <= y1 for b in boxes)


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


def score(items, weights, faces: bool, workers):
    det = Detector.load(weights, device="cpu", faces=faces, workers=workers)
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
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--n", type=int, default=60, help="composites per set (half real, half fake)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--workers", type=int, default=None)
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
        res["faces"] = score(items, args.weights, True, args.workers)
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
    print("| set | whole-image AUC | --faces AUC | whole-image TPR | whole-image FPR | --faces TPR | --faces FPR |")
    print("|---|---|---|---|---|---|---|")
    for name in FACE_SETS + ["all"]:
        a, b = res["whole_image"][name], res["faces"][name]
        print(f"| {name} | {a['auc']:.3f} | {b['auc']:.3f} | {a['tpr']:.3f} | {a['fpr']:.3f} | "
              f"{b['tpr']:.3f} | {b['fpr']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
