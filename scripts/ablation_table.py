#!/usr/bin/env python
"""Print the ablation table from runs/ablation-*/evaluation.json (see scripts/ablation.sh)."""

import json
import sys
from pathlib import Path

SEEN = ["dfdc_faceswap", "cifake_sd14"]
HELD = ["lfw_faceswap", "stylegan2_faces"]


def main(root="runs"):
    cols = [f"{s} AUC (seen)" for s in SEEN] + [f"{s} AUC (held out)" for s in HELD]
    print("| recipe | " + " | ".join(cols) + " | held-out mean AUC | held-out real FPR (lfw / sg2) |")
    print("|---" * (len(cols) + 3) + "|")
    for path in sorted(Path(root).glob("ablation-*/evaluation.json")):
        test = json.loads(path.read_text())["test"]
        name = path.parent.name[len("ablation-"):]
        aucs = [test[s]["auc"] for s in SEEN + HELD]
        held = sum(test[s]["auc"] for s in HELD) / len(HELD)
        fprs = " / ".join(f"{test[s]['fpr']:.2f}" for s in HELD)
        print(f"| {name} | " + " | ".join(f"{a:.3f}" for a in aucs) + f" | {held:.3f} | {fprs} |")


if __name__ == "__main__":
    main(*sys.argv[1:2])
