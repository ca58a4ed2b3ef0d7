#!/usr/bin/env bash
# Reproduces the Point-BERT table of docs/results.md on the synthetic shapes (issue 21):
#   1. Point-BERT's stage 1, the dVAE tokenizer (configs/synth_dvae.json), on the unlabelled set;
#   2. its stage 2, masked point modelling on that tokenizer (configs/synth_pointbert.json), with
#      the SVM probe on the labelled synthetic shapes as the monitor;
#   3. Point-MAE pretraining on the same unlabelled set (configs/synth_pretrain.json), for contrast;
#   4. FT_EPOCHS epochs on the 1600 labelled training clouds, seeds 0-2, dense and RupMoE + EWA:
#      the Point-BERT classifier (configs/synth_points_pointbert_*.json) from scratch and from
#      stage 2, the Point-MAE classifier (configs/synth_points_*.json) from scratch and from its
#      pretraining.
# Writes runs/results_pointbert/; `python3 scripts/summarize-results.py runs/results_pointbert pointbert`
# makes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
EWA=${EWA:-./build/ewa}
RUNS=${RUNS:-runs/results_pointbert}
FT_EPOCHS=${FT_EPOCHS:-5}
[ -f data/synthetic_shapes/train_files.txt ] || "$EWA" data synth -o data/synthetic_shapes
[ -f data/synthetic_unlabelled/train_files.txt ] ||
  "$EWA" data synth -o data/synthetic_unlabelled --train-per-class 500 --test-per-class 25 --seed 7
pretrain() {  # name config [--set ...]: skipped when finished
  local name=$1 config=$2
  shift 2
  [ -f "$RUNS/$name/metrics.json" ] && return
  rm -rf "${RUNS:?}/$name"
  "$EWA" pretrain --config "$config" --name "$name" --set train.runs_dir="$RUNS" --set data.root=data/synthetic_unlabelled "$@"
}
pretrain dvae configs/synth_dvae.json
pretrain bert configs/synth_pointbert.json --set pretrain.tokenizer="$RUNS/dvae/last.pt"
pretrain mae configs/synth_pretrain.json --set train.log_every=1000
for seed in 0 1 2; do
  for variant in dense ewa; do
    for model in pb pm; do
      for start in scratch ft; do
        name=${model}_${start}_${variant}_s${seed}
        [ -f "$RUNS/$name/metrics.json" ] && continue
        rm -rf "${RUNS:?}/$name"
        config=configs/synth_points_${variant}.json
        [ "$model" = pb ] && config=configs/synth_points_pointbert_${variant}.json
        args=(--config "$config" --name "$name" --set train.seed=$seed --set train.runs_dir="$RUNS"
              --set train.log_every=1000 --set train.epochs="$FT_EPOCHS")
        if [ "$start" = ft ]; then
          if [ "$model" = pb ]; then args+=(--init "$RUNS/bert/last.pt"); else args+=(--init "$RUNS/mae/last.pt"); fi
        fi
        "$EWA" train "${args[@]}"
      done
    done
  done
done
