#!/usr/bin/env python
"""Leave-one-method-out figures of face mode, on FaceForensics++'s test split (description; no
decision reads them).

    python experiments/lomo_face_mode.py --json runs/lomo_face_mode_test.json

For each FaceForensics++ method M: H6's recipe trained without M (``--lomo``:
``lomo_h6_<m>/final.safetensors``) with the face expert G trained without M and exported for that
network (``--heldout``: ``fe_g_no<m>_lomo_<m>.safetensors``, its norms read through the tool's face
path). M's test fakes against ffpp_faces' real test faces, scored in face mode
(``face_expert.image_scores_by_weight``: the maximum over the whole image and the faces' fused
logits): AUC of the network alone in face mode (w = 0) and fused at the shipped weight, and the
share of each class the fused face-mode verdicts would label ``fake``, at the shipped expert's
face-mode ``fake`` threshold (the held-out pairs carry no calibrated verdicts of their own, so
that share is a reading, not a calibrated figure).
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
from fakedet.model import expert as fx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_expert import _auc, image_scores_by_weight  # noqa: E402

METHODS = ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lomo", default="runs/trust", help="folder of lomo_h6_<m>/final.safetensors")
    ap.add_argument("--heldout", default="runs", help="folder of fe_g_no<m>_lomo_<m>.safetensors")
    ap.add_argument("--split", default="test")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    shipped = fx.read_meta(fx.default_expert_path())
    w = shipped.weight
    fake_at = float(shipped.face_verdicts["fake"])
    ims = read_manifest(manifest("ffpp_faces"), split=args.split)
    method_of = [im.group.split("-")[2] if im.group.count("-") >= 3 else im.group for im in ims]
    reals = [im.path for im in ims if im.label == 0]
    res = {"split": args.split, "weight": w, "fake_at": fake_at, "n_real": len(reals), "methods": {}}
    print(f"| method ({args.split}) | fakes | network alone, face mode | fused at w = {w} | "
          f"fakes `fake` | reals `fake` |\n|---|---|---|---|---|---|")
    for m in METHODS:
        held = [im.path for im, mm in zip(ims, method_of) if im.label == 1 and mm == m]
        low = m.lower()
        det = Detector.load(Path(args.lomo) / f"lomo_h6_{low}" / "final.safetensors", device="cpu", faces=True,
                            expert=Path(args.heldout) / f"fe_g_no{low}_lomo_{low}.safetensors")
        s = image_scores_by_weight(det, reals + held, (0.0, w))
        y = np.r_[np.zeros(len(reals)), np.ones(len(held))]
        p = 1 / (1 + np.exp(-s[w]))  # image_scores_by_weight's scores are already over T
        r = {"n_fake": len(held), "auc_network": _auc(s[0.0][y == 0], s[0.0][y == 1]),
             "auc_fused": _auc(s[w][y == 0], s[w][y == 1]),
             "fakes_fake": float((p[y == 1] >= fake_at).mean()), "reals_fake": float((p[y == 0] >= fake_at).mean())}
        res["methods"][m] = r
        print(f"| {m} | {len(held)} | {r['auc_network']:.3f} | {r['auc_fused']:.3f} | "
              f"{r['fakes_fake']:.3f} | {r['reals_fake']:.3f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
