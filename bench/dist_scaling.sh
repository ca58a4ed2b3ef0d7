#!/usr/bin/env bash
# Samples/s of the demo's point transformer (configs/synth_points_ewa.json: RupMoE + EWA, batch 32)
# trained by 1 process and by 2 data-parallel processes (Gloo), 1 torch thread each, and the
# gradient all-reduce time per step: overlapped with backward in 8 MiB buckets (the default), in
# 1 MiB buckets, and after backward (and, for comparison, 1 process with 2 threads). Prints a Markdown table for docs/benchmarks.md.
# Needs the synthetic shapes (make demo, or build/ewa data synth). About 5 minutes on 2 cores.
set -euo pipefail
EWA=${EWA:-build/ewa}
OUT=${OUT:-runs/bench_dist}
STEPS_DATA=${TRAIN_LIMIT:-960}   # 30 steps of 32
rm -rf "$OUT"
common=(--config configs/synth_points_ewa.json --set train.runs_dir="$OUT" --set train.epochs=1
        --set data.train_limit="$STEPS_DATA" --set train.threads=1 --set train.log_every=5)
"$EWA" train "${common[@]}" --name p1 > /dev/null
"$EWA" train "${common[@]}" --name p2 --nproc 2 > /dev/null
"$EWA" train "${common[@]}" --name p2after --nproc 2 --set train.overlap_allreduce=false > /dev/null
"$EWA" train "${common[@]}" --name p2small --nproc 2 --set train.bucket_mb=1 > /dev/null
"$EWA" train "${common[@]}" --name p1t2 --set train.threads=2 > /dev/null
summary() {  # median samples/s of the logged windows after the first, and the all-reduce ms/step
  python3 - "$1" <<'PY'
import json, statistics, sys
d = sys.argv[1]
steps = [json.loads(l) for l in open(d + "/log.jsonl") if '"type":"step"' in l]
sps = statistics.median(s["samples_per_s"] for s in steps[1:])
ms = statistics.median(s["ms_per_step"] for s in steps[1:])
m = json.load(open(d + "/metrics.json"))
comm = m.get("distributed", {}).get("gradient_allreduce_ms_per_step", 0.0)
print(f"{sps:.1f} | {ms:.1f} | {comm:.1f}")
PY
}
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "CPU: $cpu; $(date -u +%Y-%m-%d)"
echo
echo "| processes x threads | samples/s (median) | ms/step (median) | all-reduce wait after backward, ms/step |"
echo "|---|---|---|---|"
echo "| 1 x 1 | $(summary "$OUT/p1") |"
echo "| 2 x 1, overlapped, 8 MiB buckets (default) | $(summary "$OUT/p2") |"
echo "| 2 x 1, overlapped, 1 MiB buckets | $(summary "$OUT/p2small") |"
echo "| 2 x 1, after backward | $(summary "$OUT/p2after") |"
echo "| 1 x 2 (for comparison) | $(summary "$OUT/p1t2") |"
