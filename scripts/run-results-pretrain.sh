#!/usr/bin/env bash
# Reproduces the pretraining table of docs/results.md on the synthetic shapes:
#   1. an unlabelled set (4000 clouds, its own seed, labels never read) for Point-MAE pretraining;
#   2. `ewa pretrain --config configs/synth_pretrain.json` on it;
#   3. at one fine-tuning budget (FT_EPOCHS epochs on the 1600 labelled training clouds) and in a
#      few-shot setting (the first 80 training clouds = 10 per class, FEW_EPOCHS epochs): training
#      from scratch and fine-tuning from the pretrained encoder, dense and RupMoE + EWA, seeds 0-2.
# Writes runs/results_pretrain/; `python3 scripts/summarize-results.py runs/results_pretrain pretrain`
# makes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
EWA=${EWA:-./build/ewa}
RUNS=${RUNS:-runs/results_pretrain}
FT_EPOCHS=${FT_EPOCHS:-5}
FEW_EPOCHS=${FEW_EPOCHS:-30}
[ -f data/synthetic_shapes/train_files.txt ] || "$EWA" data synth -o data/synthetic_shapes
[ -f data/synthetic_unlabelled/train_files.txt ] ||
  "$EWA" data synth -o data/synthetic_unlabelled --train-per-class 500 --test-per-class 25 --seed 7
if [ ! -f "$RUNS/pretrain/metrics.json" ]; then
  rm -rf "${RUNS:?}/pretrain"
  "$EWA" pretrain --config configs/synth_pretrain.json --name pretrain --set train.runs_dir="$RUNS" \
    --set train.log_every=1000
fi
PRE="$RUNS/pretrain/last.pt"
for seed in 0 1 2; do
  for setting in full few; do
    for variant in dense ewa; do
      for start in scratch ft; do
        name=${setting}_${start}_${variant}_s${seed}
        [ -f "$RUNS/$name/metrics.json" ] && continue
        rm -rf "${RUNS:?}/$name"
        args=(--config configs/synth_points_${variant}.json --name "$name" --set train.seed=$seed
              --set train.runs_dir="$RUNS" --set train.log_every=1000)
        [ "$start" = ft ] && args+=(--init "$PRE")
        if [ "$setting" = full ]; then
          args+=(--set train.epochs=$FT_EPOCHS)
        else
          args+=(--set train.epochs=$FEW_EPOCHS --set data.train_limit=80 --set data.batch_size=16)
        fi
        "$EWA" train "${args[@]}"
      done
    done
  done
done
