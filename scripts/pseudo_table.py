#!/usr/bin/env python
"""Print the pseudo-fakes-only table from runs/pseudo-*/evaluation.json.

Those runs (configs/pseudo/*.json, ``"pseudo_only": true``) learn real images against
self-blended or decoder-trace pseudo-fakes and never see a genuine fake, so the AUC on every
set's test split measures transfer to fakes of an unseen kind:

    python scripts/train.py --config configs/pseudo/sbi.json --out runs/pseudo-sbi
    python scripts/pseudo_table.py runs
"""

import json
import sys
from pathlib import Path

SETS = ["dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces"]


def main(root="runs"):
    print("| recipe | steps | " + " | ".join(f"{s} AUC" for s in SETS)
          + " | mean AUC | sd15_finetunes TPR | real FPR (all test) |")
    print("|---" * (len(SETS) + 5) + "|")
    for path in sorted(Path(root).glob("pseudo-*/evaluation.json")):
        run = path.parent
        test = json.loads(path.read_text())["test"]
        steps = json.loads((run / "progress.json").read_text())["step"]
        aucs = [test[s]["auc"] for s in SETS]
        tpr = test["sd15_finetunes"]["tpr"]
        print(f"| {run.name[len('pseudo-'):]} | {steps} | " + " | ".join(f"{a:.3f}" for a in aucs)
              + f" | {sum(aucs) / len(aucs):.3f} | {tpr:.3f} | {test['all']['fpr']:.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:2])
