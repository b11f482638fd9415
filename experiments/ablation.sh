#!/usr/bin/env bash
# Ablation under a two-set hold-out: every recipe in configs/ablation/ builds on
# configs/ablation/_base.json, which trains on dfdc_faceswap, cifake_sd14 and the two single-class
# sets; lfw_faceswap and stylegan2_faces are never seen in training or calibration, so their
# figures measure transfer to unseen sources. RECIPE_seedN runs configs/ablation/RECIPE.json with
# --seed N.
#
#   bash experiments/ablation.sh [runs] [recipe ...]
#
# Default: every configs/ablation/*.json, and a second seed of eight of them. Each run writes
# runs/ablation-<recipe>/evaluation.json; `python experiments/tables.py ablation runs` prints the table.
set -euo pipefail
OUT="${1:-runs}"
shift || true
PY="${PYTHON:-python}"
if [ "$#" -eq 0 ]; then
    set -- $(ls configs/ablation/*.json | xargs -n1 basename | sed 's/\.json$//' | grep -v '^_')
    for name in all all_dann all_fresh all_g160 all_lite1 all_long all_lpft all_swa; do
        set -- "$@" "${name}_seed1"
    done
fi
for run in "$@"; do
    recipe="$run"
    seed=()
    if [[ "$run" =~ ^(.+)_seed([0-9]+)$ ]]; then
        recipe="${BASH_REMATCH[1]}"
        seed=(--seed "${BASH_REMATCH[2]}")
    fi
    "$PY" experiments/train.py --config "configs/ablation/$recipe.json" "${seed[@]}" --out "$OUT/ablation-$run"
done
"$PY" experiments/tables.py ablation "$OUT"
