#!/usr/bin/env bash
# The cost of the official vote (docs/protocols.md, section 3) on this machine: a Point-MAE-size
# classifier (configs/finetune_modelnet40h5_pointmae_dense.json: D 384, depth 12, 64 x 32 groups,
# 1024 of the first 1200 FPS points per view) trained for one step on the synthetic shapes
# (weights do not change the cost), then `ewa eval --protocol vote --views 10 --repeats R` over
# their TEST clouds, timed; prints the seconds per repeat, per cloud-view, and what the official
# 299 repeats over ModelNet40's 2468 test clouds take at that rate.
# Needs the synthetic shapes of 2048 points (make demo, or build/ewa data synth). About
# 3 minutes on 2 cores with the defaults.
set -euo pipefail
EWA=${EWA:-build/ewa}
OUT=${OUT:-runs/bench_vote}
DATA=${DATA:-data/synthetic_shapes}
SET=${SET:-modelnet_h5}
TEST=${TEST:-96}        # test clouds voted on
REPEATS=${REPEATS:-1}
rm -rf "$OUT"
common=(--set data.dataset="$SET" --set data.root="$DATA" --set train.runs_dir="$OUT")
"$EWA" train --config configs/finetune_modelnet40h5_pointmae_dense.json --name vote "${common[@]}" \
  --set finetune.init= --set train.epochs=1 --set data.train_limit=32 --set data.test_limit="$TEST" \
  --set eval.save_best_on_test=false > /dev/null
start=$(date +%s.%N)
"$EWA" eval "$OUT/vote/last.pt" --protocol vote --views 10 --repeats "$REPEATS" "${common[@]}" \
  --set data.test_limit="$TEST" | tail -1
end=$(date +%s.%N)
python3 - "$start" "$end" "$TEST" "$REPEATS" <<'PY'
import subprocess, sys
start, end, clouds, repeats = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p' | head -1"], capture_output=True, text=True).stdout.strip()
seconds = end - start
per_view = seconds / (clouds * 10 * repeats)
official = per_view * 2468 * 10 * 299
print(f"{cpu}: {seconds:.1f} s for {repeats} repeat(s) of 10 views of {clouds} clouds "
      f"(the whole command, loading included): {1000 * per_view:.2f} ms per cloud-view; "
      f"the official vote (299 repeats, ModelNet40's 2468 test clouds) at that rate: {official / 3600:.1f} h")
PY
