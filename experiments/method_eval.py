#!/usr/bin/env python
"""Per-method AUC on FaceForensics++ (docs/decisions/2026-12-02-leave-one-method-out.md): for each
checkpoint, the AUC of one method's ffpp_faces fakes against all ffpp_faces reals of the split.

    python experiments/method_eval.py --split test \\
        --weights H2=runs/trust/h2_continue_without_sd15/final.safetensors \\
        --weights lomo_deepfakes=runs/trust/lomo_deepfakes/final.safetensors \\
        --weights H3=runs/trust/h3_continue_with_ffpp/final.safetensors --json runs/trust/lomo.json

Scores are each checkpoint's own calibrated ``p_fake`` (whole image, no face mode), cached
under ``--cache`` as ``trust_eval.py``'s are (``fakedet.evaluation.scorecache``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.evaluation.metrics import auc
from fakedet.evaluation.scorecache import scores

METHODS = ["Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures"]


def load(weights: Path):
    from fakedet import Detector  # torch is imported only when something must be scored

    return Detector.load(weights, provenance=False)


def method_of(group: str) -> str:
    """'ffpp-test-FaceSwap-v12' -> 'FaceSwap'; the originals' group gives 'real'."""
    parts = group.split("-")
    return parts[2] if len(parts) > 3 else "?"


def bootstrap_se(y: np.ndarray, p: np.ndarray, draws: int, seed: int = 0) -> float:
    """Standard error of the AUC, reals and fakes resampled apart (``draws`` times)."""
    rng = np.random.default_rng(seed)
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    vals = []
    for _ in range(draws):
        idx = np.concatenate([rng.choice(neg, len(neg)), rng.choice(pos, len(pos))])
        vals.append(auc(y[idx], p[idx]))
    return float(np.std(vals, ddof=1)) if draws > 1 else float("nan")


def per_method(weights: Path, split: str, cache: Path, draws: int = 0) -> dict:
    rows = read_manifest(str(manifest("ffpp_faces")), split)
    y, p = scores(weights, "ffpp_faces", split, cache, load)
    if len(y) != len(rows):
        raise SystemExit(f"{weights}: {len(rows) - len(y)} ffpp_faces {split} images unreadable; "
                         "per-method figures need every image")
    method = np.array([method_of(r.group) for r in rows])
    if not np.array_equal(y, [r.label for r in rows]):
        raise SystemExit("scores and manifest rows are not in the same order")
    real = method == "real"
    out = {"all": auc(y, p), "n_real": int(real.sum())}
    for m in METHODS:
        keep = real | (method == m)
        out[m] = auc(y[keep], p[keep])
        out[f"n_{m}"] = int((method == m).sum())
        if draws:
            out[f"se_{m}"] = bootstrap_se(y[keep], p[keep], draws)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", action="append", required=True, help="NAME=PATH (repeat)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--cache", type=Path, default=Path("runs/trust/scores"))
    ap.add_argument("--bootstrap", type=int, default=1000,
                    help="draws for each AUC's standard error, printed as (±se); 0: none")
    ap.add_argument("--json", dest="as_json", type=Path, default=None)
    args = ap.parse_args(argv)
    results = {}
    for spec in args.weights:
        name, _, path = spec.partition("=")
        if not path or not Path(path).is_file():
            ap.error(f"--weights {spec!r}: expected NAME=PATH of a checkpoint")
        results[name] = per_method(Path(path), args.split, args.cache, args.bootstrap)
    first = next(iter(results.values()))
    print(f"\nffpp_faces {args.split}: AUC of each method's fakes against all {first['n_real']} reals")
    print("| checkpoint | all | " + " | ".join(f"{m} (n={first['n_' + m]})" for m in METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for name, r in results.items():
        se = lambda m: f" (±{r['se_' + m]:.3f})" if "se_" + m in r else ""  # noqa: E731
        print(f"| {name} | {r['all']:.3f} | " + " | ".join(f"{r[m]:.3f}{se(m)}" for m in METHODS) + " |")
    if args.as_json:
        args.as_json.write_text(json.dumps({"split": args.split, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
