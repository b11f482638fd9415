#!/usr/bin/env python
"""Compare checkpoints by the rules of docs/decisions/2026-12-01-trust-continued.md: per-set
AUC on val, the three verdicts' thresholds chosen on val of named sources, and the share of a
held-out source's images labelled ``fake`` (or its AUC) at those thresholds.

    python experiments/trust_eval.py --weights shipped=weights/fakedet-default.safetensors \\
        --weights A=runs/trust/without_ffpp_unsplash/final.safetensors \\
        --real-sources dfdc_faceswap,lfw_faceswap,cifake_sd14,stylegan2_faces,imagenet_real_photos,utkface_real \\
        --fake-sources dfdc_faceswap,lfw_faceswap,cifake_sd14,stylegan2_faces,sd15_finetunes \\
        --heldout ffpp_faces,unsplash_portraits --heldout-splits train,val --json runs/trust/a.json

``--members A,B,C`` adds a column with the mean of those checkpoints' figures (what one run of a
recipe gives on average, for rules that compare a candidate with its recipe's seeds); the
thresholds, which are each checkpoint's own, are not averaged.

Scores are the calibrated ``p_fake`` of ``fakedet.Detector`` (whole image, no face mode, no
provenance), cached per checkpoint sha256, set and split under ``--cache``
(``fakedet.evaluation.scorecache``). An unreadable image is left out and counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fakedet.data.sets import BY_NAME
from fakedet.evaluation.trust import study
from fakedet.evaluation.verdicts import RuleUnmet

FACE_SWAP_SETS = ["dfdc_faceswap", "lfw_faceswap", "ffpp_faces"]  # the rules' "mean of the three face sets"


def load(weights: Path):
    from fakedet import Detector  # torch is imported only when something must be scored

    return Detector.load(weights, provenance=False)


def members_mean(members: list[dict]) -> dict:
    """The mean of each figure over several checkpoints' ``study`` results (same sets); the
    per-checkpoint thresholds, file names and hashes become None."""
    def mean(values):
        first = values[0]
        if isinstance(first, dict):
            return {k: mean([v[k] for v in values]) for k in first}
        if isinstance(first, bool) or not isinstance(first, (int, float)) or any(v is None for v in values):
            return None
        return float(np.mean(values))

    out = mean(members)
    out["t_fake"] = out["t_real"] = None
    for n, r in out["heldout"].items():  # image counts are the same for every member
        for k in ("n", "n_real", "n_fake"):
            r[k] = members[0]["heldout"][n][k]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", action="append", required=True, help="NAME=PATH (repeat)")
    ap.add_argument("--real-sources", required=True)
    ap.add_argument("--fake-sources", required=True)
    ap.add_argument("--heldout", default="")
    ap.add_argument("--heldout-splits", default="train,val")
    ap.add_argument("--cache", type=Path, default=Path("runs/trust/scores"))
    ap.add_argument("--json", dest="as_json", type=Path, default=None)
    ap.add_argument("--members", default="", help="NAME,NAME,...: add the mean of these checkpoints' figures")
    args = ap.parse_args(argv)
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    for n in split(args.real_sources) + split(args.fake_sources) + split(args.heldout):
        if n not in BY_NAME:
            ap.error(f"unknown set {n!r}")
    members = split(args.members)
    unknown = [m for m in members if m not in [w.partition("=")[0] for w in args.weights]]
    if unknown:  # checked before anything is scored
        ap.error(f"--members names no --weights entry: {', '.join(unknown)}")
    results = {}
    for spec in args.weights:
        name, _, path = spec.partition("=")
        print(f"{name}: {path}", flush=True)
        try:
            results[name] = study(Path(path), split(args.real_sources), split(args.fake_sources),
                                  split(args.heldout), split(args.heldout_splits), args.cache, load)
        except RuleUnmet as exc:  # its thresholds cannot meet the rules: the comparison goes on without it
            print(f"{name}: {exc}; left out", file=sys.stderr, flush=True)
    if not results:
        return 1
    members = [m for m in members if m in results]
    if members:
        results[f"mean({','.join(members)})"] = members_mean([results[m] for m in members])
    names = list(results)
    print("\n| figure | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    rows = [("t_fake", lambda r: "–" if r["t_fake"] is None else f"{r['t_fake']:.6f}"),
            ("t_real", lambda r: "–" if r["t_real"] is None else f"{r['t_real']:.6f}")]
    rows += [(f"val AUC {n}", lambda r, n=n: f"{r['val_auc'][n]:.3f}") for n in results[names[0]]["val_auc"]]
    if all(n in results[names[0]]["val_auc"] for n in FACE_SWAP_SETS):
        rows.append((f"val AUC mean of {', '.join(FACE_SWAP_SETS)}",
                     lambda r: f"{np.mean([r['val_auc'][n] for n in FACE_SWAP_SETS]):.4f}"))
    rows += [("val fakes labelled fake (mean over fake sources)", lambda r: f"{r['val_fake_caught_mean']:.3f}")]
    for n in results[names[0]]["heldout"]:
        rows.append((f"held-out {n} ({args.heldout_splits}) images, real / fake",
                     lambda r, n=n: f"{r['heldout'][n]['n_real']} / {r['heldout'][n]['n_fake']}"))
        for k in ("real_labelled_fake", "real_labelled_uncertain", "fake_labelled_fake", "auc"):
            if results[names[0]]["heldout"][n][k] is not None:
                rows.append((f"held-out {n} ({args.heldout_splits}) {k.replace('_', ' ')}",
                             lambda r, n=n, k=k: f"{r['heldout'][n][k]:.3f}"))
    for label, fmt in rows:
        print(f"| {label} | " + " | ".join(fmt(results[m]) for m in names) + " |")
    if args.as_json:
        args.as_json.parent.mkdir(parents=True, exist_ok=True)
        args.as_json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
