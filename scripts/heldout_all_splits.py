#!/usr/bin/env python
"""Scores runs on *every* image of the sets they never saw, not only on the test splits.

    python scripts/heldout_all_splits.py runs            # after scripts/ablation.sh runs
    python scripts/heldout_all_splits.py runs/loso1200   # after scripts/loso.sh ... runs/loso1200

The ablation (scripts/ablation.sh) keeps lfw_faceswap and stylegan2_faces out of training and
calibration altogether, and each leave-one-set-out run (scripts/loso.sh) keeps out one paired
set, so the train and val images of a held-out set are as unseen as its test images. Scoring
all of them (for example 3,000 lfw_faceswap images instead of 267) cuts the noise of each
held-out AUC about threefold. For each ROOT/ablation-<recipe>/final.safetensors and
ROOT/loso-<set>/final.safetensors this writes heldout_all_splits.json next to it (reused when it
already holds those sets for the same weights) and prints a Markdown table for each kind of run found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fakedet import Detector  # noqa: E402
from fakedet.model.checkpoint import sha256  # noqa: E402
from fakedet.evaluation import report  # noqa: E402
from fakedet.data.labelled import read_manifest  # noqa: E402

ABLATION_HELD = ["lfw_faceswap", "stylegan2_faces"]
PAIRED = ["dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces"]
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def scores(weights: Path, held: list[str]) -> dict:
    """The report of one run on all splits of its held-out sets, cached next to its weights."""
    out = weights.parent / "heldout_all_splits.json"
    digest = sha256(weights)
    if out.exists():
        cached = json.loads(out.read_text())
        # files written before the digest was recorded are trusted as they were
        if cached.get("weights_sha256", digest) == digest and all(s in cached["sets"] for s in held):
            return cached["sets"]
    det = Detector.load(weights, device="cpu")
    rep = report(det, {s: read_manifest(str(DATA / s / "manifest.csv")) for s in held})
    rep.pop("_scores")
    rep["weights_sha256"] = digest  # a retrained run's weights are scored again
    out.write_text(json.dumps(rep, indent=1, default=float))
    return json.loads(out.read_text())["sets"]


def ablation_table(root: Path) -> None:
    runs = sorted(root.glob("ablation-*/final.safetensors"))
    if not runs:
        return
    print("| recipe | " + " | ".join(f"{s} AUC (all splits, n)" for s in ABLATION_HELD)
          + " | held-out mean AUC | held-out real FPR (lfw / sg2) |")
    print("|---" * (len(ABLATION_HELD) + 3) + "|")
    for weights in runs:
        rep = scores(weights, ABLATION_HELD)
        aucs = [rep[s]["auc"] for s in ABLATION_HELD]
        cells = " | ".join(f"{rep[s]['auc']:.3f} ({rep[s]['n']})" for s in ABLATION_HELD)
        fprs = " / ".join(f"{rep[s]['fpr']:.2f}" for s in ABLATION_HELD)
        name = weights.parent.name[len("ablation-"):]
        print(f"| {name} | {cells} | {sum(aucs) / len(aucs):.3f} | {fprs} |", flush=True)
    print()


def loso_table(root: Path) -> None:
    runs = [(s, root / f"loso-{s}" / "final.safetensors") for s in PAIRED]
    runs = [(s, w) for s, w in runs if w.exists()]
    if not runs:
        return
    print("| held-out set | n (all splits) | AUC | TPR@5%FPR | accuracy | real FPR | fake TPR |")
    print("|---|---|---|---|---|---|---|")
    aucs = []
    for held, weights in runs:
        r = scores(weights, [held])[held]
        aucs.append(r["auc"])
        tpr = r.get("tpr")
        print(f"| {held} | {r['n']:,} | {r['auc']:.3f} | {r['tpr_at_5pct_fpr']:.3f} | {r['accuracy']:.3f} |"
              f" {r['fpr']:.3f} | {'-' if tpr is None else f'{tpr:.3f}'} |", flush=True)
    print(f"\nmean held-out AUC over {len(aucs)} set(s), all splits: {sum(aucs) / len(aucs):.3f}\n")


def main(root: str = "runs") -> int:
    ablation_table(Path(root))
    loso_table(Path(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
