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
set -euo pipefail
PRETRAIN=0
if [ "${1:-}" = "--pretrain" ]; then PRETRAIN=1; shift; fi
ROUNDS=${1:-3}
EWA=${EWA:-build/ewa}
PY=${EWA_VENV:-/opt/ewa-venv}/bin/python
REF=${REF:-$(dirname "$0")/../../shared/bench/ref_pointmae.py}
STEPS=${STEPS:-5}
THREADS=${THREADS:-2}
[ -f "$REF" ] || { echo "vs_reference: $REF not found (set REF=)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ours() {  # variant -> median ms/step
  "$EWA" --threads "$THREADS" bench train-step --config configs/finetune_modelnet40_pointmae_ewa.json --batch-size 32 \
    --warmup 2 --steps "$STEPS" --rounds 1 --variants "$1" | awk -F'|' -v v=" $1 " 'index($2, v) == 1 {gsub(/ /, "", $4); print $4}'
}
ref() {  # none|rup -> median ms/step
  "$PY" "$REF" --size pointmae --mode train --batch 32 --threads "$THREADS" --warmup 2 --iters "$STEPS" --moe "$1" \
    --experts 4 --beta 0.3 2>/dev/null | "$PY" -c 'import json,sys; print(round(1000*json.loads(sys.stdin.readlines()[-1])["train_step"]["median_s"],1))'
}
if [ "$PRETRAIN" = 1 ]; then
  for r in $(seq "$ROUNDS"); do
    "$EWA" --threads "$THREADS" bench train-step --config configs/shapenet55_pointmae_pretrain.json --batch-size 32 \
      --warmup 2 --steps "$STEPS" --rounds 1 --variants dense | awk -F'|' 'index($2, " dense ") == 1 {gsub(/ /, "", $4); print $4}' >> "$tmp/ours"
    REF="$REF" "$PY" "$(dirname "$0")/ref_pointmae_pretrain.py" --batch 32 --threads "$THREADS" --warmup 2 --iters "$STEPS" 2>/dev/null |
      "$PY" -c 'import json,sys; print(round(1000*json.loads(sys.stdin.readlines()[-1])["train_step"]["median_s"],1))' >> "$tmp/ref"
    echo "round $r: ours $(tail -1 "$tmp/ours"), reference $(tail -1 "$tmp/ref") ms" >&2
  done
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1); $THREADS threads; $ROUNDS rounds of $STEPS timed steps per side; $(date -u +%Y-%m-%d)"
  echo
  "$PY" - "$tmp" <<'PY'
import statistics, sys, os
d = sys.argv[1]
o = [float(x) for x in open(os.path.join(d, "ours")).read().split()]
r = [float(x) for x in open(os.path.join(d, "ref")).read().split()]
print("| Point-MAE pretraining step (dense) | ewa ms/step: median of rounds (range) | reference ms/step | reference / ewa |")
print("|---|---:|---:|---:|")
print(f"| batch 32, mask ratio 0.6 | {statistics.median(o):.0f} ({min(o):.0f}-{max(o):.0f}) | {statistics.median(r):.0f} ({min(r):.0f}-{max(r):.0f}) | {statistics.median(r) / statistics.median(o):.2f}x |")
PY
  exit 0
fi
for r in $(seq "$ROUNDS"); do
  echo "$(ours dense)" >> "$tmp/ours_dense"
  echo "$(ref none)" >> "$tmp/ref_dense"
  echo "$(ours rup+ewa)" >> "$tmp/ours_rup"
  echo "$(ref rup)" >> "$tmp/ref_rup"
  echo "round $r: ours dense $(tail -1 "$tmp/ours_dense"), ref dense $(tail -1 "$tmp/ref_dense"), ours rup+ewa $(tail -1 "$tmp/ours_rup"), ref rup+ewa $(tail -1 "$tmp/ref_rup") ms" >&2
done
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
torch=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)
echo "CPU: $cpu; torch $torch; $THREADS threads; $ROUNDS rounds of $STEPS timed steps per side (after 2 warm-up steps); $(date -u +%Y-%m-%d)"
echo
"$PY" - "$tmp" <<'PY'
import statistics, sys, os
d = sys.argv[1]
def load(n): return [float(x) for x in open(os.path.join(d, n)).read().split()]
print("| model | ewa ms/step: median of rounds (range) | reference ms/step | reference / ewa |")
print("|---|---:|---:|---:|")
for name, a, b in [("dense", "ours_dense", "ref_dense"), ("RupMoE + EWA", "ours_rup", "ref_rup")]:
    o, r = load(a), load(b)
    mo, mr = statistics.median(o), statistics.median(r)
    print(f"| {name} | {mo:.0f} ({min(o):.0f}-{max(o):.0f}) | {mr:.0f} ({min(r):.0f}-{max(r):.0f}) | {mr / mo:.2f}x |")
PY
