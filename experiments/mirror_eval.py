#!/usr/bin/env python
"""Face mode with mirrored views (test-time augmentation): the probe of
docs/decisions/2026-12-04-mirrored-views-in-face-mode.md.

    python experiments/mirror_eval.py --json runs/mirror.json

One face-mode pass per detector records, for every image, the network's raw logits (the whole
image, then each face) on its input and on the input mirrored left-right (the view and the
native-resolution patches together), and the face expert's logits on each face square and its
mirror. From them four candidates are rebuilt:

  0   the shipped face mode: network and expert on the input as it is
  E   the expert's logit the mean over the square and its mirror
  N   the network's logits (whole image and faces) the mean over the input and its mirror
  EN  both

For each candidate the fusion's norms (mean and sd of both models' logits over the reference
reals: the real val images of the expert's training sets, largest face, as ``face_expert.py
export`` reads them) are read again from that candidate's logits, and each image's score is the
maximum over its whole-image logit and its faces' fused logits at w = 0.7, as ``Detector`` makes
it. AUCs are reported:

- benefit: for each FaceForensics++ method M, M's train and val fakes against ffpp_faces' real val
  faces, scored by H6's recipe trained without M and the face expert G trained without M
  (``--lomo DIR`` and ``--heldout DIR``: ``lomo_h6_<m>/final.safetensors`` and
  ``fe_g_no<m>_lomo_<m>.safetensors``);
- cost: the shipped network and face expert on the val splits of ffpp_faces, dfdc_faceswap and
  lfw_faceswap.

No test image is read. Before the passes the rebuilt score of candidate 0 is checked against the
tool's own ``p_fake`` on a few images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.inference.result import Result
from fakedet.model import expert as fx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_expert import FACE_SETS, _auc  # noqa: E402

METHODS = ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")
CANDIDATES = ("0", "E", "N", "EN")
WEIGHT = 0.7


def mirrored_logits(det: Detector, paths: list[str]) -> dict[str, dict]:
    """Per path: ``ln``/``ln_m`` the network's raw logits (whole image first, then each face) on
    the input and its mirror, ``le``/``le_m`` the expert's on each face square and its mirror.
    The tool's own decoding, face finding, model calls and CPU runner are used; only the scoring
    step is replaced."""
    import torch

    from fakedet.inference.detector import _cat

    model = det.expert[0]
    out: dict[str, dict] = {}

    def score(batch):
        ok = [i for i, d in enumerate(batch) if d.error is None]
        if ok:
            views = _cat([batch[i].views for i in ok], det.device)
            patches = _cat([batch[i].patches for i in ok], det.device)
            ln = det.forward(views, patches).double().numpy()
            ln_m = det.forward(torch.flip(views, dims=[-1]).contiguous(),
                               torch.flip(patches, dims=[-1]).contiguous()).double().numpy()
            crops = np.concatenate([batch[i].expert_crops for i in ok])
            le = fx.expert_logits(model, crops, det._cpu)
            le_m = fx.expert_logits(model, np.ascontiguousarray(crops[:, :, ::-1]), det._cpu)
            s = e = 0
            for i in ok:
                n = len(batch[i].views)
                out[batch[i].path] = {"ln": ln[s:s + n], "ln_m": ln_m[s:s + n],
                                      "le": le[e:e + n - 1], "le_m": le_m[e:e + n - 1]}
                s, e = s + n, e + n - 1
        return [Result(d.path, None, None, d.error or "recorded by mirror_eval") for d in batch]

    det.score_decoded = score
    try:
        recs = det.predict(paths)
    finally:
        del det.score_decoded
    missing = [r.path for r in recs if r.path not in out]
    if missing:
        sys.exit(f"{len(missing)} images could not be scored: {[r.error for r in recs if r.path in missing][:3]}")
    return out


def candidate_logits(rec: dict, c: str) -> tuple[np.ndarray, np.ndarray]:
    ln = (rec["ln"] + rec["ln_m"]) / 2 if "N" in c else rec["ln"]
    le = (rec["le"] + rec["le_m"]) / 2 if "E" in c else rec["le"]
    return ln, le


def norms(recs: list[dict], c: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(network, expert) mean and sd over the reference reals' largest faces, for candidate c."""
    ln, le = [], []
    for r in recs:
        if len(r["le"]):
            a, b = candidate_logits(r, c)
            ln.append(a[1])
            le.append(b[0])
    if len(le) < 100:
        sys.exit(f"only {len(le)} reference faces")
    ln, le = np.array(ln), np.array(le)
    return (float(ln.mean()), float(ln.std())), (float(le.mean()), float(le.std()))


def image_score(rec: dict, c: str, nrm) -> float:
    (mu_n, sd_n), (mu_e, sd_e) = nrm
    ln, le = candidate_logits(rec, c)
    fused = (1 - WEIGHT) * ln[1:] + WEIGHT * (mu_n + sd_n * (le - mu_e) / sd_e)
    return float(max([ln[0], *fused]))


def scores(det: Detector, paths: list[str]) -> dict[str, np.ndarray]:
    """Each candidate's image scores for ``paths`` (network units, before the temperature), the
    norms read on the expert's reference reals in the same pass."""
    meta = det.expert[1]
    ref = [im.path for name in meta.training["real_sets"]
           for im in read_manifest(manifest(name), split="val") if im.label == 0]
    logits = mirrored_logits(det, sorted(set(paths) | set(ref)))
    out = {}
    for c in CANDIDATES:
        nrm = norms([logits[p] for p in ref], c)
        out[c] = np.array([image_score(logits[p], c, nrm) for p in paths])
    return out


def check(det: Detector, paths: list[str]) -> None:
    """Candidate 0, rebuilt with the file's own norms, against the tool's p_fake."""
    from fakedet.inference.result import calibrated

    recs = det.predict(paths)
    logits = mirrored_logits(det, paths)
    meta = det.expert[1]
    nrm = (meta.norm_network, meta.norm_expert)
    for r in recs:
        (mu_n, sd_n), (mu_e, sd_e) = nrm
        ln, le = logits[r.path]["ln"], logits[r.path]["le"]
        fused = (1 - meta.weight) * ln[1:] + meta.weight * (mu_n + sd_n * (le - mu_e) / sd_e)
        p = calibrated(float(max([ln[0], *fused])), det.temperature)
        if abs(p - r.p_fake) > 1e-4:
            sys.exit(f"rebuilt score {p:.6f} != the tool's {r.p_fake:.6f} for {r.path}")
    print(f"check: candidate 0 rebuilt = the tool's p_fake on {len(recs)} images")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lomo", default="runs/trust", help="folder of lomo_h6_<m>/final.safetensors")
    ap.add_argument("--heldout", default="runs", help="folder of fe_g_no<m>_lomo_<m>.safetensors")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    res: dict = {"weight": WEIGHT, "benefit": {}, "cost": {}}

    seen = Detector.load(None, device="cpu", faces=True, expert="auto")
    if seen.expert is None or seen.expert[1].training is None:
        sys.exit("the shipped face expert (with its training record) is needed")
    val = {n: read_manifest(manifest(n), split="val") for n in FACE_SETS}
    check(seen, [im.path for im in val["ffpp_faces"][:24]])
    paths = [im.path for n in FACE_SETS for im in val[n]]
    s = scores(seen, paths)
    start = 0
    for n in FACE_SETS:
        y = np.array([im.label for im in val[n]])
        sl = slice(start, start + len(y))
        res["cost"][n] = {c: _auc(s[c][sl][y == 0], s[c][sl][y == 1]) for c in CANDIDATES}
        start += len(y)
        print(n, json.dumps(res["cost"][n]), flush=True)

    ims = read_manifest(manifest("ffpp_faces"))
    method = [im.group.split("-")[2] if im.group.count("-") >= 3 else im.group for im in ims]
    reals = [im.path for im in ims if im.label == 0 and im.split == "val"]
    for m in args.methods.split(","):
        held = [im.path for im, mm in zip(ims, method) if im.label == 1 and mm == m and im.split in ("train", "val")]
        low = m.lower()
        det = Detector.load(Path(args.lomo) / f"lomo_h6_{low}" / "final.safetensors", device="cpu", faces=True,
                            expert=Path(args.heldout) / f"fe_g_no{low}_lomo_{low}.safetensors")
        s = scores(det, reals + held)
        y = np.r_[np.zeros(len(reals)), np.ones(len(held))]
        res["benefit"][m] = {c: _auc(s[c][y == 0], s[c][y == 1]) for c in CANDIDATES}
        print(m, len(held), "fakes", json.dumps(res["benefit"][m]), flush=True)

    methods = list(res["benefit"])
    print("\n| candidate | " + " | ".join(methods) + " | mean gain | worst method gain | "
          + " | ".join(f"{n} gain" for n in FACE_SETS) + " | passes |")
    print("|---|" + "---|" * (len(methods) + 3 + len(FACE_SETS)))
    res["rule"] = {}
    for c in CANDIDATES:
        gains = [res["benefit"][m][c] - res["benefit"][m]["0"] for m in methods]
        costs = [res["cost"][n][c] - res["cost"][n]["0"] for n in FACE_SETS]
        ok = c != "0" and np.mean(gains) >= 0.010 and min(gains) >= -0.005 and min(costs) >= -0.005
        res["rule"][c] = {"mean_gain": float(np.mean(gains)), "worst_gain": float(min(gains)),
                          "worst_cost": float(min(costs)), "passes": bool(ok)}
        print(f"| {c} | " + " | ".join(f"{res['benefit'][m][c]:.4f}" for m in methods)
              + f" | {np.mean(gains):+.4f} | {min(gains):+.4f} | " + " | ".join(f"{x:+.4f}" for x in costs)
              + f" | {'yes' if ok else ('–' if c == '0' else 'no')} |")
    passing = [c for c in CANDIDATES if res["rule"][c]["passes"]]
    chosen = None
    if passing:
        chosen = max(passing, key=lambda c: res["rule"][c]["mean_gain"])
        if "E" in passing and res["rule"]["E"]["mean_gain"] >= res["rule"][chosen]["mean_gain"] - 0.005:
            chosen = "E"
    res["chosen"] = chosen
    print(f"chosen: {chosen or 'none (nothing changes)'}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
