#!/usr/bin/env bash
# Reproduces the protocols table of docs/results.md: the synthetic shapes trained with today's
# fixed pipeline (each cloud FPS-reduced once, per-step cosine) and with the official one
# (data.pipeline = resample with FPS to 600 then a random 512, timm's per-epoch schedule, epochs
# 0..14 with t_initial 14 as the official 0..300 with 300), dense and RupMoE + EWA, seeds 0, 1, 2,
# the same 15 epochs each; every run also votes after training (eval.final_vote, VOTE_REPEATS
# repeats of 10 views). Writes runs/results_protocols/<pipeline>_<variant>_s<seed>/;
# `python3 scripts/summarize-results.py runs/results_protocols protocols` makes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
EWA=${EWA:-./build/ewa}
RUNS=${RUNS:-runs/results_protocols}
VOTE_REPEATS=${VOTE_REPEATS:-30}
[ -f data/synthetic_shapes/train_files.txt ] || "$EWA" data synth -o data/synthetic_shapes
# Both keep the first 600 FPS points of each test cloud for the vote (data.fps_points; 1200 for 1024 upstream).
official=(--set data.pipeline=resample --set optim.schedule=timm_epoch --set optim.cosine_epochs=14)
for seed in 0 1 2; do
  for pipeline in fixed official; do
    for variant in dense ewa; do
      name=${pipeline}_${variant}_s${seed}
      [ -f "$RUNS/$name/metrics.json" ] && continue
      rm -rf "${RUNS:?}/$name"
      extra=()
      [ "$pipeline" = official ] && extra=("${official[@]}")
      "$EWA" train --config configs/synth_points_${variant}.json --name "$name" --set train.seed=$seed \
        --set train.runs_dir="$RUNS" --set train.log_every=1000 --set eval.final_vote=true \
        --set eval.vote_repeats=$VOTE_REPEATS --set data.fps_points=600 ${extra[@]+"${extra[@]}"}
    done
  done
done
