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


def bootstrap(y: np.ndarray, p: np.ndarray, draws: int, seed: int = 0) -> np.ndarray:
    """The AUC on ``draws`` resamples, reals and fakes resampled apart. The same seed draws the
    same images for every checkpoint (the rows are in manifest order), so two checkpoints'
    draws pair up, and the spread of their differences is the paired standard error."""
    rng = np.random.default_rng(seed)
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    vals = []
    for _ in range(draws):
        idx = np.concatenate([rng.choice(neg, len(neg)), rng.choice(pos, len(pos))])
        vals.append(auc(y[idx], p[idx]))
    return np.array(vals)


def per_method(weights: Path, split: str, cache: Path, draws: int = 0) -> tuple[dict, dict]:
    """The figures, and each method's bootstrap draws (for paired differences)."""
    rows = read_manifest(str(manifest("ffpp_faces")), split)
    y, p = scores(weights, "ffpp_faces", split, cache, load)
    if len(y) != len(rows):
        raise SystemExit(f"{weights}: {len(rows) - len(y)} ffpp_faces {split} images unreadable; "
                         "per-method figures need every image")
    method = np.array([method_of(r.group) for r in rows])
    if not np.array_equal(y, [r.label for r in rows]):
        raise SystemExit("scores and manifest rows are not in the same order")
    real = method == "real"
    out, boot = {"all": auc(y, p), "n_real": int(real.sum())}, {}
    for m in METHODS:
        keep = real | (method == m)
        out[m] = auc(y[keep], p[keep])
        out[f"n_{m}"] = int((method == m).sum())
        if draws > 1:
            boot[m] = bootstrap(y[keep], p[keep], draws)
            out[f"se_{m}"] = float(np.std(boot[m], ddof=1))
    return out, boot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", action="append", required=True, help="NAME=PATH (repeat)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--cache", type=Path, default=Path("runs/trust/scores"))
    ap.add_argument("--bootstrap", type=int, default=1000,
                    help="draws for each AUC's standard error, printed as (±se); 0: none")
    ap.add_argument("--reference", default=None,
                    help="NAME of one --weights: also print each checkpoint's difference from it, "
                         "with the paired bootstrap standard error")
    ap.add_argument("--json", dest="as_json", type=Path, default=None)
    args = ap.parse_args(argv)
    results, boots = {}, {}
    for spec in args.weights:
        name, _, path = spec.partition("=")
        if not path or not Path(path).is_file():
            ap.error(f"--weights {spec!r}: expected NAME=PATH of a checkpoint")
        results[name], boots[name] = per_method(Path(path), args.split, args.cache, args.bootstrap)
    if args.reference is not None and args.reference not in results:
        ap.error(f"--reference {args.reference!r} is not one of the --weights names")
    first = next(iter(results.values()))
    print(f"\nffpp_faces {args.split}: AUC of each method's fakes against all {first['n_real']} reals")
    print("| checkpoint | all | " + " | ".join(f"{m} (n={first['n_' + m]})" for m in METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for name, r in results.items():
        se = lambda m: f" (±{r['se_' + m]:.3f})" if "se_" + m in r else ""  # noqa: E731, B023
        print(f"| {name} | {r['all']:.3f} | " + " | ".join(f"{r[m]:.3f}{se(m)}" for m in METHODS) + " |")
    if args.reference is not None:
        ref = args.reference
        print(f"\ndifference from {ref} (± paired bootstrap standard error, the same draws of images)")
        print("| checkpoint | " + " | ".join(METHODS) + " |")
        print("|---|" + "---|" * len(METHODS))
        for name, r in results.items():
            if name == ref:
                continue
            cells = []
            for m in METHODS:
                d = r[m] - results[ref][m]
                se = (f" (±{np.std(boots[name][m] - boots[ref][m], ddof=1):.3f})"
                      if m in boots[name] and m in boots[ref] else "")
                r[f"minus_{ref}_{m}"] = d
                cells.append(f"{d:+.3f}{se}")
            print(f"| {name} | " + " | ".join(cells) + " |")
    if args.as_json:
        args.as_json.write_text(json.dumps({"split": args.split, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
