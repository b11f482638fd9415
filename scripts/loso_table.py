#!/usr/bin/env python
"""Print the leave-one-set-out table from runs/loso-*/evaluation.json (see scripts/loso.sh)."""

import json
import sys
from pathlib import Path

PAIRED = ["dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces"]


def main(root="runs"):
    rows = []
    print("| held-out set | AUC | TPR@5%FPR | accuracy | real FPR | seen sets' mean AUC |")
    print("|---|---|---|---|---|---|")
    for held in PAIRED:
        path = Path(root) / f"loso-{held}" / "evaluation.json"
        if not path.exists():
            print(f"| {held} | not run | | | | |")
            continue
        test = json.loads(path.read_text())["test"]
        r = test[held]
        seen = [test[s]["auc"] for s in PAIRED if s != held]
        rows.append(r["auc"])
        print(f"| {held} | {r['auc']:.3f} | {r['tpr_at_5pct_fpr']:.3f} | {r['accuracy']:.3f} | {r['fpr']:.3f} |"
              f" {sum(seen) / len(seen):.3f} |")
    if rows:
        print(f"\nmean held-out AUC over {len(rows)} set(s): {sum(rows) / len(rows):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
