#!/usr/bin/env python
"""Print the Markdown tables of the training studies from their run folders.

    python experiments/tables.py ablation runs    # runs/ablation-*/evaluation.json (experiments/ablation.sh)
    python experiments/tables.py loso runs        # runs/loso-<set>/evaluation.json (experiments/loso.sh)
    python experiments/tables.py pseudo runs      # runs/pseudo-*/evaluation.json (configs/pseudo/*.json)
    python experiments/tables.py heldout runs     # every split of the held-out sets, ablation and loso runs

``ablation``: AUC on the two sets the ablation trains on and on the two it never sees (the
paired sets outside configs/ablation/_base.json's training sets), with the held-out real FPR.
``loso``: each leave-one-set-out run's figures on the set it held out. ``pseudo``: the
pseudo-fakes-only runs (``"pseudo_only": true``), which never see a genuine fake, so the AUC on
every set's test split measures transfer to fakes of an unseen kind.

``heldout`` scores runs on *every* image of the sets they never saw, not only on the test
splits. The ablation keeps lfw_faceswap and stylegan2_faces out of training and calibration
altogether, and each leave-one-set-out run keeps out one paired set, so the train and val images
of a held-out set are as unseen as its test images. Scoring all of them (for example 3,000
lfw_faceswap images instead of 267) cuts the noise of each held-out AUC about threefold. For
each ROOT/ablation-<recipe>/final.safetensors and ROOT/loso-<set>/final.safetensors this writes
heldout_all_splits.json next to it (reused when it already holds those sets for the same
weights) and prints a table for each kind of run found.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fakedet.data.sets import PAIRED, data_root, manifest, names
from fakedet.training.recipe import resolve

REPO = Path(__file__).resolve().parents[1]
PAIRED_SETS = names(PAIRED)


def ablation_sets() -> tuple[list[str], list[str]]:
    """The paired sets the ablation trains on and those it holds out (configs/ablation/_base.json)."""
    trained = resolve(REPO / "configs" / "ablation" / "_base.json").data.train_sets
    return [s for s in PAIRED_SETS if s in trained], [s for s in PAIRED_SETS if s not in trained]


def ablation(root: Path) -> None:
    seen, held = ablation_sets()
    cols = [f"{s} AUC (seen)" for s in seen] + [f"{s} AUC (held out)" for s in held]
    print("| recipe | " + " | ".join(cols) + " | held-out mean AUC | held-out real FPR (lfw / sg2) |")
    print("|---" * (len(cols) + 3) + "|")
    for path in sorted(root.glob("ablation-*/evaluation.json")):
        test = json.loads(path.read_text())["test"]
        name = path.parent.name[len("ablation-"):]
        aucs = [test[s]["auc"] for s in seen + held]
        mean = sum(test[s]["auc"] for s in held) / len(held)
        fprs = " / ".join(f"{test[s]['fpr']:.2f}" for s in held)
        print(f"| {name} | " + " | ".join(f"{a:.3f}" for a in aucs) + f" | {mean:.3f} | {fprs} |")


def loso(root: Path) -> None:
    rows = []
    print("| held-out set | AUC | TPR@5%FPR | accuracy | real FPR | seen sets' mean AUC |")
    print("|---|---|---|---|---|---|")
    for held in PAIRED_SETS:
        path = root / f"loso-{held}" / "evaluation.json"
        if not path.exists():
            print(f"| {held} | not run | | | | |")
            continue
        test = json.loads(path.read_text())["test"]
        r = test[held]
        seen = [test[s]["auc"] for s in PAIRED_SETS if s != held]
        rows.append(r["auc"])
        print(f"| {held} | {r['auc']:.3f} | {r['tpr_at_5pct_fpr']:.3f} | {r['accuracy']:.3f} | {r['fpr']:.3f} |"
              f" {sum(seen) / len(seen):.3f} |")
    if rows:
        print(f"\nmean held-out AUC over {len(rows)} set(s): {sum(rows) / len(rows):.3f}")


def pseudo(root: Path) -> None:
    sets = PAIRED_SETS
    print("| recipe | steps | " + " | ".join(f"{s} AUC" for s in sets)
          + " | mean AUC | sd15_finetunes TPR | real FPR (all test) |")
    print("|---" * (len(sets) + 5) + "|")
    for path in sorted(root.glob("pseudo-*/evaluation.json")):
        run = path.parent
        test = json.loads(path.read_text())["test"]
        steps = json.loads((run / "progress.json").read_text())["step"]
        aucs = [test[s]["auc"] for s in sets]
        tpr = test["sd15_finetunes"]["tpr"]
        print(f"| {run.name[len('pseudo-'):]} | {steps} | " + " | ".join(f"{a:.3f}" for a in aucs)
              + f" | {sum(aucs) / len(aucs):.3f} | {tpr:.3f} | {test['all']['fpr']:.3f} |")


def heldout_scores(weights: Path, held: list[str], data: Path) -> dict:
    """The report of one run on all splits of its held-out sets, cached next to its weights."""
    from fakedet import Detector
    from fakedet.data.labelled import read_manifest
    from fakedet.evaluation.report import report
    from fakedet.model.checkpoint import sha256

    out = weights.parent / "heldout_all_splits.json"
    digest = sha256(weights)
    if out.exists():
        cached = json.loads(out.read_text())
        # files written before the digest was recorded are trusted as they were
        if cached.get("weights_sha256", digest) == digest and all(s in cached["sets"] for s in held):
            return cached["sets"]
    det = Detector.load(weights, device="cpu")
    rep = report(det, {s: read_manifest(manifest(s, data)) for s in held}).to_dict()
    rep["weights_sha256"] = digest  # a retrained run's weights are scored again
    out.write_text(json.dumps(rep, indent=1, default=float))
    return json.loads(out.read_text())["sets"]


def heldout(root: Path, data: Path) -> None:
    _, held = ablation_sets()
    runs = sorted(root.glob("ablation-*/final.safetensors"))
    if runs:
        print("| recipe | " + " | ".join(f"{s} AUC (all splits, n)" for s in held)
              + " | held-out mean AUC | held-out real FPR (lfw / sg2) |")
        print("|---" * (len(held) + 3) + "|")
        for weights in runs:
            rep = heldout_scores(weights, held, data)
            aucs = [rep[s]["auc"] for s in held]
            cells = " | ".join(f"{rep[s]['auc']:.3f} ({rep[s]['n']})" for s in held)
            fprs = " / ".join(f"{rep[s]['fpr']:.2f}" for s in held)
            name = weights.parent.name[len("ablation-"):]
            print(f"| {name} | {cells} | {sum(aucs) / len(aucs):.3f} | {fprs} |", flush=True)
        print()
    loso_runs = [(s, root / f"loso-{s}" / "final.safetensors") for s in PAIRED_SETS]
    loso_runs = [(s, w) for s, w in loso_runs if w.exists()]
    if not loso_runs:
        return
    print("| held-out set | n (all splits) | AUC | TPR@5%FPR | accuracy | real FPR | fake TPR |")
    print("|---|---|---|---|---|---|---|")
    aucs = []
    for s, weights in loso_runs:
        r = heldout_scores(weights, [s], data)[s]
        aucs.append(r["auc"])
        tpr = r.get("tpr")
        print(f"| {s} | {r['n']:,} | {r['auc']:.3f} | {r['tpr_at_5pct_fpr']:.3f} | {r['accuracy']:.3f} |"
              f" {r['fpr']:.3f} | {'-' if tpr is None else f'{tpr:.3f}'} |", flush=True)
    print(f"\nmean held-out AUC over {len(aucs)} set(s), all splits: {sum(aucs) / len(aucs):.3f}\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", choices=["ablation", "loso", "pseudo", "heldout"])
    ap.add_argument("root", nargs="?", default="runs", help="folder of the run folders  [default: runs]")
    ap.add_argument("--data", default=str(data_root()), help="the sets, for heldout")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if args.table == "heldout":
        heldout(root, Path(args.data))
    else:
        {"ablation": ablation, "loso": loso, "pseudo": pseudo}[args.table](root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
