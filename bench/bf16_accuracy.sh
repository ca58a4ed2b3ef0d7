#!/usr/bin/env bash
# Accuracy and time of bf16 autocast against float32 on the synthetic shapes: the demo's EWA point
# transformer (configs/synth_points_ewa.json) for 8 epochs, seeds 0, 1, 2, one thread per run and
# the two precisions of a seed side by side. Prints a Markdown table. Needs the synthetic shapes
# (make demo, or build/ewa data synth). About 12 minutes on 2 cores.
set -euo pipefail
EWA=${EWA:-build/ewa}
OUT=${OUT:-runs/bf16_acc}
EPOCHS=${EPOCHS:-8}
rm -rf "$OUT" && mkdir -p "$OUT"
for seed in 0 1 2; do
  for p in fp32 bf16; do
    "$EWA" --threads 1 train --config configs/synth_points_ewa.json --set train.runs_dir="$OUT" --set train.seed=$seed \
      --set train.precision=$p --set train.epochs="$EPOCHS" --name ${p}_s$seed > "$OUT/${p}_s$seed.log" 2>&1 &
  done
  wait
done
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1); $(grep -o -m1 'avx512_bf16' /proc/cpuinfo || echo 'no avx512_bf16'); $(date -u +%Y-%m-%d)"
echo
python3 - "$OUT" <<'PY'
import json, statistics, sys
d = sys.argv[1]
print("| precision | test OA, seeds 0 / 1 / 2 | mean | run time, s (mean) |")
print("|---|---|---:|---:|")
for p in ("fp32", "bf16"):
    m = [json.load(open(f"{d}/{p}_s{s}/metrics.json")) for s in range(3)]
    oa = [x["test"]["oa"] for x in m]
    print(f"| {p} | {' / '.join(f'{v:.4f}' for v in oa)} | {statistics.mean(oa):.4f} | {statistics.mean(x['seconds'] for x in m):.0f} |")
PY
