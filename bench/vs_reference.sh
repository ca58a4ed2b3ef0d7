#!/usr/bin/env bash
# Training step of the Point-MAE-size classifier (1024 points, 64 groups of 32, D 384, depth 12,
# batch 32), dense and RupMoE + EWA (N = 4 in every other block, share rate 0.3): `ewa bench
# train-step` against ../shared/bench/ref_pointmae.py (PyTorch, written like the official code), on
# the same LibTorch and threads, alternating the two sides process by process over ROUNDS rounds.
# Prints the medians and ranges of the per-round medians, and the speed-up, as a Markdown table.
# Usage: bash bench/vs_reference.sh [ROUNDS] (default 3; about 8 minutes on 2 cores).
#        bash bench/vs_reference.sh --pretrain [ROUNDS]: the Point-MAE pretraining step (dense,
#        configs/shapenet55_pointmae_pretrain.json) against bench/ref_pointmae_pretrain.py, which
#        builds the masked autoencoder from the reference's modules (about 5 minutes).
#        bash bench/vs_reference.sh --seg [ROUNDS]: the part-segmentation step at batch 16, 2048 points
#        (configs/finetune_shapenetpart_pointmae_ewa.json, dense and RupMoE + EWA) against
#        bench/ref_pointmae_seg.py (about 10 minutes per round on 2 cores; DEVICE=cuda works here).
#        bash bench/vs_reference.sh --pointbert [ROUNDS]: both Point-BERT pretraining stages at the official
#        sizes, batch 16 (configs/shapenet55_pointbert_dvae.json and configs/shapenet55_pointbert.json,
#        dense) against bench/ref_pointbert.py --stage dvae|bert, built from the reference's modules
#        (about 12 minutes per round on 2 cores).
# Env: DEVICE=cuda times both sides of the fine-tuning step on the GPU (REF_DEVICE=cuda for the
#      reference, train.device=cuda for ewa; not with --pretrain; scripts/gpu-check.sh runs the GPU comparison with bf16 and larger batches too),
#      STEPS (timed steps per side and round, default 5), WARMUP (default 2), THREADS (2), EWA
#      (build/ewa), REF (the reference), PY (its Python; default $EWA_VENV's).
set -euo pipefail
PRETRAIN=0
SEG=0
POINTBERT=0
if [ "${1:-}" = "--pretrain" ]; then PRETRAIN=1; shift; fi
if [ "${1:-}" = "--pointbert" ]; then POINTBERT=1; shift; fi
if [ "${1:-}" = "--seg" ]; then SEG=1; shift; fi
ROUNDS=${1:-3}
EWA=${EWA:-build/ewa}
PY=${PY:-${EWA_VENV:-/opt/ewa-venv}/bin/python}
REF=${REF:-$(dirname "$0")/../../shared/bench/ref_pointmae.py}
STEPS=${STEPS:-5}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
DEVICE=${DEVICE:-cpu}
export REF_DEVICE=$DEVICE
[ -f "$REF" ] || { echo "vs_reference: $REF not found (set REF=)" >&2; exit 2; }
if [ "$PRETRAIN$POINTBERT" != 00 ] && [ "$DEVICE" != cpu ]; then
  echo "vs_reference: --pretrain and --pointbert compare on the CPU only (their references have no GPU mode)" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
BATCH=32
[ "$SEG" = 1 ] && BATCH=16
[ "$POINTBERT" = 1 ] && BATCH=16
ours() {  # config variant -> median ms/step
  "$EWA" --threads "$THREADS" bench train-step --config "$1" --batch-size "$BATCH" --warmup "$WARMUP" --steps "$STEPS" --rounds 1 \
    --set train.device="$DEVICE" --variants "$2" | awk -F'|' -v v=" $2 " 'index($2, v) == 1 {gsub(/ /, "", $4); print $4}'
}
ms() {  # the last JSON line of a reference run on stdin -> its median ms/step
  "$PY" -c 'import json,sys; print(round(1000*json.loads(sys.stdin.readlines()[-1])["train_step"]["median_s"],1))'
}
ref() {  # none|rup -> median ms/step
  "$PY" "$REF" --size pointmae --mode train --batch 32 --threads "$THREADS" --warmup "$WARMUP" --iters "$STEPS" --moe "$1" \
    --experts 4 --beta 0.3 2>/dev/null | ms
}
ref_pretrain() {  # -> median ms/step
  REF="$REF" "$PY" "$(dirname "$0")/ref_pointmae_pretrain.py" --batch 32 --threads "$THREADS" --warmup "$WARMUP" --iters "$STEPS" \
    2>/dev/null | ms
}
ref_pointbert() {  # dvae|bert -> median ms/step
  REF="$REF" "$PY" "$(dirname "$0")/ref_pointbert.py" --stage "$1" --batch 16 --threads "$THREADS" --warmup "$WARMUP" \
    --iters "$STEPS" 2>/dev/null | ms
}
ref_seg() {  # none|rup -> median ms/step
  REF="$REF" "$PY" "$(dirname "$0")/ref_pointmae_seg.py" --batch 16 --threads "$THREADS" --warmup "$WARMUP" --iters "$STEPS" \
    --moe "$1" 2>/dev/null | ms
}
finetune=configs/finetune_modelnet40_pointmae_ewa.json
[ "$SEG" = 1 ] && finetune=configs/finetune_shapenetpart_pointmae_ewa.json
if [ "$POINTBERT" = 1 ]; then
  rows=("Point-BERT stage 1 (dVAE) step, dense:dvae_ours:dvae_ref" "Point-BERT stage 2 (masked point modelling) step, dense:bert_ours:bert_ref")
elif [ "$SEG" = 1 ]; then
  rows=("segmentation dense:ours_dense:ref_dense" "segmentation RupMoE + EWA:ours_rup:ref_rup")
elif [ "$PRETRAIN" = 1 ]; then
  rows=("Point-MAE pretraining step, dense:pre_ours:pre_ref")
else
  rows=("dense:ours_dense:ref_dense" "RupMoE + EWA:ours_rup:ref_rup")
fi
for r in $(seq "$ROUNDS"); do
  if [ "$POINTBERT" = 1 ]; then
    ours configs/shapenet55_pointbert_dvae.json dense >> "$tmp/dvae_ours"
    ref_pointbert dvae >> "$tmp/dvae_ref"
    ours configs/shapenet55_pointbert.json dense >> "$tmp/bert_ours"
    ref_pointbert bert >> "$tmp/bert_ref"
  elif [ "$PRETRAIN" = 1 ]; then
    ours configs/shapenet55_pointmae_pretrain.json dense >> "$tmp/pre_ours"
    ref_pretrain >> "$tmp/pre_ref"
  elif [ "$SEG" = 1 ]; then
    ours "$finetune" dense >> "$tmp/ours_dense"
    ref_seg none >> "$tmp/ref_dense"
    ours "$finetune" rup+ewa >> "$tmp/ours_rup"
    ref_seg rup >> "$tmp/ref_rup"
  else
    ours "$finetune" dense >> "$tmp/ours_dense"
    ref none >> "$tmp/ref_dense"
    ours "$finetune" rup+ewa >> "$tmp/ours_rup"
    ref rup >> "$tmp/ref_rup"
  fi
  line="round $r:"
  for row in "${rows[@]}"; do
    IFS=: read -r name a b <<< "$row"
    line="$line $name: ewa $(tail -1 "$tmp/$a"), reference $(tail -1 "$tmp/$b") ms;"
  done
  echo "$line" >&2
done
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
torch=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)
gpu=$([ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "CPU: $cpu;${gpu:+ GPU: $gpu;} device $DEVICE; torch $torch; $THREADS threads; $ROUNDS rounds of $STEPS timed steps per side (after $WARMUP warm-up steps); $(date -u +%Y-%m-%d)"
echo
"$PY" - "$tmp" "${rows[@]}" <<'PY'
import statistics, sys, os
d = sys.argv[1]
def load(n): return [float(x) for x in open(os.path.join(d, n)).read().split()]
print("| model | ewa ms/step: median of rounds (range) | reference ms/step | reference / ewa |")
print("|---|---:|---:|---:|")
for row in sys.argv[2:]:
    name, a, b = row.split(":")
    o, r = load(a), load(b)
    mo, mr = statistics.median(o), statistics.median(r)
    print(f"| {name} | {mo:.0f} ({min(o):.0f}-{max(o):.0f}) | {mr:.0f} ({min(r):.0f}-{max(r):.0f}) | {mr / mo:.2f}x |")
PY
