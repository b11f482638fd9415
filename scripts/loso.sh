#!/usr/bin/env bash
# Leave-one-set-out: train on all sets but one (the two single-class sets always stay in),
# calibrate on the val splits of the training sets only, and evaluate on every test split; the
# held-out set's test figures are the proxy for an unseen generator.
#
#   bash scripts/loso.sh [configs/loso.json] [runs]
#
# Each run writes runs/loso-<held-out>/evaluation.json; scripts/loso_table.py prints the table.
set -euo pipefail
CONFIG="${1:-configs/loso.json}"
OUT="${2:-runs}"
PY="${PYTHON:-python}"
PAIRED=(dfdc_faceswap lfw_faceswap cifake_sd14 stylegan2_faces)
for held in "${PAIRED[@]}"; do
    sets=()
    for s in "${PAIRED[@]}" imagenet_real_photos sd15_finetunes; do
        [ "$s" != "$held" ] && sets+=("$s")
    done
    train_sets="$(IFS=,; echo "${sets[*]}")"
    "$PY" scripts/train.py --config "$CONFIG" --out "$OUT/loso-$held" --train-sets "$train_sets"
done
"$PY" scripts/loso_table.py "$OUT"
