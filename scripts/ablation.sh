#!/usr/bin/env bash
# Ablation under a two-set hold-out: each recipe is trained on dfdc_faceswap, cifake_sd14 and the
# two single-class sets, and evaluated on every test split; lfw_faceswap and stylegan2_faces are
# never seen in training or calibration, so their figures measure transfer to unseen sources.
#
#   bash scripts/ablation.sh [runs] [recipe ...]     (default: every configs/ablation/*.json)
#
# Each run writes runs/ablation-<recipe>/evaluation.json; scripts/ablation_table.py prints the table.
set -euo pipefail
OUT="${1:-runs}"
shift || true
PY="${PYTHON:-python}"
TRAIN_SETS="dfdc_faceswap,cifake_sd14,imagenet_real_photos,sd15_finetunes"
if [ "$#" -eq 0 ]; then
    set -- $(ls configs/ablation/*.json | xargs -n1 basename | sed 's/\.json$//')
fi
for name in "$@"; do
    "$PY" scripts/train.py --config "configs/ablation/$name.json" --out "$OUT/ablation-$name" \
        --train-sets "$TRAIN_SETS"
done
"$PY" scripts/ablation_table.py "$OUT"
