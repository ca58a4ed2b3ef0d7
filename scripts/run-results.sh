#!/usr/bin/env bash
# Reproduces docs/results.md: dense vs RupMoE+EWA vs routed MoE (with and without EWA) on
# Fashion-MNIST at one fixed budget (the configs' 3 epochs), seeds 0, 1, 2. Each run writes
# runs/results/<variant>_s<seed>/metrics.json; scripts/summarize-results.py makes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
EWA=${EWA:-./build/ewa}
RUNS=${RUNS:-runs/results}
for seed in 0 1 2; do
  for variant in dense ewa routed routed_ewa; do
    case $variant in
      dense) cfg=configs/fmnist_vit_dense.json; extra=() ;;
      ewa) cfg=configs/fmnist_vit_ewa.json; extra=() ;;
      routed) cfg=configs/fmnist_vit_routed.json; extra=() ;;
      routed_ewa) cfg=configs/fmnist_vit_routed.json; extra=(--set ewa.enabled=true) ;;
    esac
    name=${variant}_s${seed}
    [ -f "$RUNS/$name/metrics.json" ] && continue
    rm -rf "${RUNS:?}/$name"
    "$EWA" train --config "$cfg" --name "$name" --set train.seed=$seed --set train.runs_dir="$RUNS" \
      --set train.log_every=200 "${extra[@]}"
  done
done
