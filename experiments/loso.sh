#!/usr/bin/env bash
# Leave-one-set-out: each configs/loso/without_<set>.json trains on all sets but that paired set
# (the two single-class sets always stay in), calibrates on the val splits of its training sets
# only, and is evaluated on every test split; the held-out set's test figures are the proxy for an
# unseen generator. configs/loso/long/ holds the same four runs three times longer.
#
#   bash experiments/loso.sh [runs] [configs/loso]
#   bash experiments/loso.sh runs/loso1200 configs/loso/long
#
# Each run writes <runs>/loso-<held-out>/evaluation.json; `python experiments/tables.py loso <runs>`
# prints the table.
set -euo pipefail
OUT="${1:-runs}"
DIR="${2:-configs/loso}"
PY="${PYTHON:-python}"
for config in "$DIR"/without_*.json; do
    held="$(basename "$config" .json)"
    held="${held#without_}"
    "$PY" experiments/train.py --config "$config" --out "$OUT/loso-$held"
done
"$PY" experiments/tables.py loso "$OUT"
