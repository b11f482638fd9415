#!/usr/bin/env python
"""Does the landmark self-blend expert add to a fakedet network? A label-free fusion.

Each model's logit is standardised by its mean and standard deviation over the real *val* faces
of the expert's training sets, and the two are averaged with equal weight (nothing is fitted to
labels). Prints and writes the test AUC of the network alone, the expert alone and the fusion
on ffpp_faces (all and per method), dfdc_faceswap and lfw_faceswap.

    python experiments/fusion_eval.py --expert runs/sbi_ffpp --json runs/fusion_h6_sbi.json

The expert's work folder comes from ``experiments/sbi_expert.py`` (prepare, train); the network
is the shipped file unless ``--weights`` names another. Decision record:
docs/decisions/2026-12-03-fusing-the-expert-with-h6.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sbi_expert as sbi  # noqa: E402

SETS = ("ffpp_faces", "dfdc_faceswap", "lfw_faceswap")


def network_logits(det, root: Path, name: str, files) -> np.ndarray:
    paths = [str(root / name / f) for f in files]
    p = np.array([r.p_fake for r in det.predict(paths)], np.float64)
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expert", required=True, help="sbi_expert.py work folder (trained)")
    ap.add_argument("--weights", default=None, help="fakedet checkpoint (default: the shipped one)")
    ap.add_argument("--json")
    args = ap.parse_args()

    from fakedet import Detector
    from fakedet.data.sets import data_root

    root = data_root()
    work = Path(args.expert)
    expert, state = sbi.load_expert(work)
    det = Detector.load(args.weights) if args.weights else Detector.load()

    # the reference: real val faces of the expert's training sets
    ref_e, ref_n = [], []
    for name in state["train_sets"]:
        z = np.load(sbi.reals_npz(work, name))
        sel = (z["split"] == "val") & (z["label"] == 0)
        ref_e.append(sbi.scores(expert, z["crops"][sel], state["size"]))
        ref_n.append(network_logits(det, root, name, z["files"][sel]))
    ref_e, ref_n = np.concatenate(ref_e), np.concatenate(ref_n)
    norm = {"expert": (float(ref_e.mean()), float(ref_e.std())),
            "network": (float(ref_n.mean()), float(ref_n.std()))}

    res = {"expert": str(work), "weights": args.weights or "shipped", "reference_reals": int(len(ref_e)),
           "norm": norm, "sets": {}}
    for name in SETS:
        z = np.load(work / f"{name}.npz")
        e = (sbi.scores(expert, z["crops"], state["size"]) - norm["expert"][0]) / norm["expert"][1]
        n = (network_logits(det, root, name, z["files"]) - norm["network"][0]) / norm["network"][1]
        f = (e + n) / 2
        y = z["label"]
        cells = {"all": y == 1}
        if name == "ffpp_faces":
            method = np.array([sbi._method(g) for g in z["group"]])
            cells.update({m: (method == m) & (y == 1) for m in sorted(set(method[y == 1]))})
        r = {}
        for cell, sel in cells.items():
            r[cell] = {"n_fake": int(sel.sum()), "network": sbi.auc(n[y == 0], n[sel]),
                       "expert": sbi.auc(e[y == 0], e[sel]), "fusion": sbi.auc(f[y == 0], f[sel])}
        r["n_real"] = int((y == 0).sum())
        r["correlation_real"] = float(np.corrcoef(e[y == 0], n[y == 0])[0, 1])
        res["sets"][name] = r
        print(name, json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
