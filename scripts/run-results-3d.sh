#!/usr/bin/env bash
# Reproduces the 3D table of docs/results.md: dense vs RupMoE + EWA on the synthetic shapes at
# one fixed budget (the configs' epochs), seeds 0, 1, 2. Writes runs/results3d/<variant>_s<seed>/;
# `python3 scripts/summarize-results.py runs/results3d 3d` makes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
EWA=${EWA:-./build/ewa}
RUNS=${RUNS:-runs/results3d}
[ -f data/synthetic_shapes/train_files.txt ] || "$EWA" data synth -o data/synthetic_shapes
for seed in 0 1 2; do
  for variant in dense ewa; do
    name=${variant}_s${seed}
    [ -f "$RUNS/$name/metrics.json" ] && continue
    rm -rf "${RUNS:?}/$name"
    "$EWA" train --config configs/synth_points_${variant}.json --name "$name" --set train.seed=$seed \
      --set train.runs_dir="$RUNS" --set train.log_every=1000
  done
done
