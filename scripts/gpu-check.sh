#!/usr/bin/env bash
# The GPU check, in two halves:
#   bash scripts/gpu-check.sh prepare [DIR]   on this machine (Debian, scripts/install-deps.sh done):
#       copies what a bare GPU image lacks into DIR (default gpu-deps/, git-ignored): the
#       header-only libraries (nlohmann-json, CLI11, Gloo's headers) with their CMake configs,
#       zlib (headers and static library), GoogleTest's sources and the eager reference
#       (../shared/bench/ref_pointmae.py, copied unchanged).
#   bash scripts/gpu-check.sh run [DIR]        on a machine with a GPU, nvcc and PyTorch (CUDA 13) but
#       none of our Debian libraries (e.g. through the device tool, carrying DIR). Every step runs
#       whatever the earlier ones gave (a step that needs the build is marked skipped when the build
#       failed), each with its own time limit, and the run ends with one table: each step's status,
#       seconds and figures. Steps: build (the minimal variant with CUDA on), the test suite, bench
#       ops, the training step side by side with the PyTorch eager reference (fp32 and bf16, dense,
#       RUP+EWA and routed, batch 32, 128 and 256), then end to end on cuda: train (fp32, bf16),
#       resume, pretrain, fine-tune from an official-layout checkpoint, eval with every protocol,
#       predict. Everything lands in DIR/results/ (results.tar.gz there holds it all).
#   bash scripts/gpu-check.sh selftest         the step runner on three made-up steps (tests/test_dist.cpp).
# Env: GPU_CHECK_REF (the eager reference script; default DIR/ref/ref_pointmae.py, which prepare
#      copies unchanged from ../shared/bench/),
#      GPU_CHECK_PYTHON (python3), GPU_CHECK_PEAK_TFLOPS (dense bf16 peak for the share column;
#      default 989, the H200 SXM's), GPU_CHECK_TESTS (ctest -R regex; default: every test). For a
#      dry run of the script on a machine without a GPU: GPU_CHECK_DEVICE=cpu (every cuda becomes
#      cpu) and GPU_CHECK_PREBUILT=<build dir> (no build step: that build's ewa and tests are used).
#      GPU_CHECK_SKIP="step ..." leaves those steps out (e.g. a rerun of the rest); GPU_CHECK_DEADLINE
#      (seconds, default 540). Through the device tool: carry gpu-deps, run
#      `bash scripts/gpu-check.sh run gpu-deps` with timeout_s 600; summary.md, results.tar.gz and
#      table-so-far.md (rewritten after every step) land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-}
DIR=${2:-gpu-deps}
die() { echo "gpu-check: error: $*" >&2; exit 1; }

prepare() {
  set -e
  # What an earlier run left (its data and builds) must not travel with the folder.
  rm -rf "$DIR/results" "$DIR/work" "$DIR/gtest" "$DIR/gtest-build"
  mkdir -p "$DIR/include" "$DIR/share/cmake" "$DIR/lib" "$DIR/src"
  for h in /usr/include/nlohmann /usr/include/CLI /usr/include/gloo /usr/include/zlib.h /usr/include/zconf.h; do
    [ -e "$h" ] || die "$h missing: run scripts/install-deps.sh first"
    cp -r "$h" "$DIR/include/"
  done
  for c in /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11; do
    [ -d "$c" ] || die "$c missing: run scripts/install-deps.sh first"
    cp -r "$c" "$DIR/share/cmake/"
  done
  [ -f /usr/lib/x86_64-linux-gnu/libz.a ] || die "/usr/lib/x86_64-linux-gnu/libz.a missing (zlib1g-dev)"
  cp /usr/lib/x86_64-linux-gnu/libz.a "$DIR/lib/"
  [ -f /usr/src/googletest/CMakeLists.txt ] || die "/usr/src/googletest missing (googletest package)"
  rm -rf "$DIR/src/googletest"
  cp -r /usr/src/googletest "$DIR/src/googletest"
  # The eager reference, unchanged: ../shared beside the checkout does not travel to a device machine.
  if [ -f ../shared/bench/ref_pointmae.py ]; then
    mkdir -p "$DIR/ref"
    cp ../shared/bench/ref_pointmae.py "$DIR/ref/"
  else
    echo "gpu-check: warning: ../shared/bench/ref_pointmae.py not found: the side-by-side step will fail" >&2
  fi
  echo "gpu-check: prepared $DIR ($(du -sh "$DIR" | cut -f1)); carry it to the GPU machine and run: bash scripts/gpu-check.sh run $DIR"
}

# ---- the step runner -------------------------------------------------------------------------
# step NAME LIMIT_S COMMAND...: runs COMMAND with its output in $OUTDIR/NAME.txt, under `timeout`,
# and records status (ok, FAILED rc, TIMEOUT, skipped) and seconds; never stops the script.
# needs NAME...: true when every named step passed (else the step is recorded as skipped).
# figure NAME TEXT: the figures column of NAME's row.
# A whole-run deadline (GPU_CHECK_DEADLINE seconds from the start, default 540: the device tool
# kills a command at 600 s): a step's limit is cut to the time left, and a step with under 10 s
# left is skipped, so the table is always written. The table so far is rewritten after every step
# (and copied to $OUT when set), so even a killed run brings back what it measured.
declare -a ORDER=()
declare -A STATUS=() SECONDS_OF=() FIGURES=()
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_DEADLINE:-540} ))
step() {
  local name=$1 limit=$2
  shift 2
  case " ${GPU_CHECK_SKIP:-} " in *" $name "*) skip "$name" "GPU_CHECK_SKIP"; return 0 ;; esac
  local left=$(( DEADLINE - $(date +%s) ))
  if [ "$left" -lt "${MIN_STEP_S:-10}" ]; then skip "$name" "no time left before GPU_CHECK_DEADLINE"; return 0; fi
  [ "$left" -lt "$limit" ] && limit=$left
  ORDER+=("$name")
  local t0 rc
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" >"$OUTDIR/$name.txt" 2>&1
  rc=$?
  SECONDS_OF[$name]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  if [ $rc -eq 0 ]; then STATUS[$name]=ok
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then STATUS[$name]="TIMEOUT (${limit} s)"
  else STATUS[$name]="FAILED (exit $rc)"; fi
  echo "gpu-check: $name: ${STATUS[$name]} in ${SECONDS_OF[$name]} s" >&2
  save_table
  return 0
}
save_table() {
  [ -n "${SAVE_TABLE_TO:-}" ] || return 0
  table >"$SAVE_TABLE_TO"
  [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ] && cp "$SAVE_TABLE_TO" "$OUT/" 2>/dev/null
  return 0
}
skip() {
  ORDER+=("$1")
  : >"$OUTDIR/$1.txt"  # (empty, so the figures read nothing)
  STATUS[$1]="skipped ($2)"
  SECONDS_OF[$1]=0
  echo "gpu-check: $1: skipped ($2)" >&2
}
passed() { [ "${STATUS[$1]:-}" = ok ]; }
figure() { FIGURES[$1]="${FIGURES[$1]:-}${FIGURES[$1]:+; }$2"; }
table() {
  echo "| step | status | s | figures |"
  echo "|---|---|---:|---|"
  local n
  for n in "${ORDER[@]}"; do echo "| $n | ${STATUS[$n]} | ${SECONDS_OF[$n]} | ${FIGURES[$n]:-} |"; done
}

selftest() {
  OUTDIR=$(mktemp -d)
  step passes 10 bash -c 'echo fine'
  step fails 10 bash -c 'echo broken >&2; exit 3'
  step slow 1 sleep 5
  if passed fails; then step after_fails 10 true; else skip after_fails "needs fails"; fi
  step still_runs 10 bash -c 'echo "| row | 1.5 |"'
  figure still_runs "$(awk -F'|' '/row/ {print "value" $3}' "$OUTDIR/still_runs.txt" | tr -s ' ')"
  MIN_STEP_S=1 DEADLINE=$(( $(date +%s) + 2 ))
  step cut_to_the_deadline 100 sleep 10
  step past_the_deadline 100 true
  table
  rm -rf "$OUTDIR"
}

# ---- figures from the outputs --------------------------------------------------------------
# The median ms/step of VARIANT in an `ewa bench train-step` table.
bench_ms() { awk -F'|' -v v="$2" '{n = $2; gsub(/^ +| +$/, "", n)} n == v {gsub(/ /, "", $4); print $4; exit}' "$1" 2>/dev/null; }
# The eager reference's median step in ms, and its forward FLOPs per sample, from its JSON line.
ref_ms() { "$PY" -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("%.1f" % (1000*r["train_step"]["median_s"]))' "$1" 2>/dev/null; }
ref_flops() { "$PY" -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(r["fwd_flops_per_sample"]["total"])' "$1" 2>/dev/null; }
# TFLOP/s of a training step: 3 x forward FLOPs (forward + backward) x batch / time.
tflops() { awk -v f="$1" -v b="$2" -v ms="$3" 'BEGIN { if (ms > 0 && f > 0) printf "%.1f", 3 * f * b / (ms / 1000) / 1e12 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b }'; }
last_line_with() { grep -E "$2" "$1" 2>/dev/null | tail -1 | cut -c1-160; }
# A run's "done in ...: final test ..." (its time and final figure), and its last ms/step and samples/s.
run_result() { last_line_with "$OUTDIR/$1.txt" '^done in' | grep -oE 'done in [0-9:]+: final test [^(]*'; }
run_speed() { last_line_with "$OUTDIR/$1.txt" 'ms/step' | grep -oE '[0-9.]+ ms/step [0-9]+ samples/s'; }

run() {
  [ -d "$DIR/include/nlohmann" ] || die "$DIR is not prepared: run 'bash scripts/gpu-check.sh prepare $DIR' where install-deps ran"
  local abs
  abs=$(cd "$DIR" && pwd)
  OUTDIR="$abs/results"
  rm -rf "$OUTDIR" "$abs/work"
  mkdir -p "$OUTDIR" "$abs/work"
  SAVE_TABLE_TO="$OUTDIR/table-so-far.md"
  local work="$abs/work" src
  src=$(pwd)
  PY=${GPU_CHECK_PYTHON:-python3}
  local ref=${GPU_CHECK_REF:-$abs/ref/ref_pointmae.py}
  local peak=${GPU_CHECK_PEAK_TFLOPS:-989}
  local jobs
  jobs=$(nproc)
  local t_start
  t_start=$(date +%s)
  local dev=${GPU_CHECK_DEVICE:-cuda} bdir=${GPU_CHECK_PREBUILT:-build-gpu}

  step gpu 30 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
  figure gpu "$(head -1 "$OUTDIR/gpu.txt")"
  local arch
  arch=$(awk -F', ' '{gsub(/\./, "", $4); print $4; exit}' "$OUTDIR/gpu.txt")
  local nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

  # Build: GoogleTest from the carried sources, then the minimal variant with CUDA on.
  if [ -n "${GPU_CHECK_PREBUILT:-}" ]; then
    step build 30 "$bdir/ewa" --version
  else
  step build 420 bash -c "
    set -e
    if [ ! -f '$abs/gtest/lib/cmake/GTest/GTestConfig.cmake' ] && [ ! -f '$abs/gtest/lib64/cmake/GTest/GTestConfig.cmake' ]; then
      cmake -S '$abs/src/googletest' -B '$abs/gtest-build' -DCMAKE_INSTALL_PREFIX='$abs/gtest' -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF
      cmake --build '$abs/gtest-build' -j $jobs
      cmake --install '$abs/gtest-build'
    fi
    cmake -S . -B build-gpu -G \"\$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')\" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH='$abs;$abs/gtest' -DZLIB_ROOT='$abs' \
      -DEWA_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER='$nvcc' -DEWA_CUDA_ARCHITECTURES='${arch:-90}' \
      -DEWA_WITH_HDF5=OFF -DEWA_WITH_PCL=OFF -DEWA_WITH_OPEN3D=OFF -DEWA_WITH_CAIRO=OFF -DEWA_WITH_LIBLINEAR=OFF -DEWA_WITH_PNG=OFF -DEWA_WITH_JPEG=OFF
    cmake --build build-gpu -j $jobs
    build-gpu/ewa --version"
  fi
  figure build "$(grep -E '^built with' "$OUTDIR/build.txt" | cut -c12-)"
  local ewa="$src/$bdir/ewa"
  if ! passed build; then
    for s in tests bench_ops step_b32 step_b128_b256 synth train_fp32 train_bf16 resume pretrain finetune_official eval predict; do
      skip "$s" "needs build"
    done
    finish_run "$t_start" "$peak"
    return
  fi

  # The whole suite (CUDA-vs-CPU kernels, the GPU resume, the rank/GPU check, the step runner).
  step tests 150 bash -c "cd $bdir && ctest -j $jobs --timeout 120 --output-on-failure ${GPU_CHECK_TESTS:+-R '$GPU_CHECK_TESTS'}"
  figure tests "$(grep -E 'tests passed' "$OUTDIR/tests.txt")"
  figure tests "skipped: $(grep -cE '\(Skipped\)' "$OUTDIR/tests.txt")"

  step bench_ops 90 "$ewa" bench ops --sizes 1024 8192 --repeats 11
  # (columns: op, points, samples / queries, implementation, device, ms, time / ewa's, agreement)
  figure bench_ops "$(awk -F'|' '$6 ~ /cuda/ && $5 ~ /ewa/ {gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $7); printf "%s%s %s pts: %s ms", sep, $2, $3, $7; sep=", "}' "$OUTDIR/bench_ops.txt")"
  figure bench_ops "LibTorch on cuda / ewa on cuda: $(awk -F'|' '$6 ~ /cuda/ && $5 ~ /LibTorch/ {gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $8); printf "%s%s %s: %s", sep, $2, $3, $8; sep=", "}' "$OUTDIR/bench_ops.txt")"

  # The training step side by side with the eager reference, one after the other in one run.
  local cfg=configs/modelnet40_pointmae_ewa.json common="--set train.device=$dev --warmup 10 --steps 30 --rounds 2"
  step step_b32 200 bash -c "
    set -e
    REF_DEVICE=$dev '$PY' '$ref' --size pointmae --mode train --batch 32 --warmup 10 --iters 30 --json '$work/ref_dense.jsonl'
    REF_DEVICE=$dev '$PY' '$ref' --size pointmae --moe rup --experts 4 --mode train --batch 32 --warmup 10 --iters 30 --json '$work/ref_rup.jsonl'
    echo '## ewa fp32'; '$ewa' bench train-step --config $cfg --batch-size 32 $common
    echo '## ewa bf16'; '$ewa' bench train-step --config $cfg --batch-size 32 $common --set train.precision=bf16"
  cp "$work"/ref_*.jsonl "$OUTDIR/" 2>/dev/null
  awk '/## ewa fp32/ {p=1; next} /## ewa bf16/ {p=0} p' "$OUTDIR/step_b32.txt" >"$work/fp32.md"
  awk '/## ewa bf16/ {p=1; next} p' "$OUTDIR/step_b32.txt" >"$work/bf16.md"
  local flops ref_d ref_r d32 e32 r32 d16 e16 r16
  flops=$(ref_flops "$work/ref_dense.jsonl")
  ref_d=$(ref_ms "$work/ref_dense.jsonl")
  ref_r=$(ref_ms "$work/ref_rup.jsonl")
  d32=$(bench_ms "$work/fp32.md" dense); e32=$(bench_ms "$work/fp32.md" rup+ewa); r32=$(bench_ms "$work/fp32.md" routed)
  d16=$(bench_ms "$work/bf16.md" dense); e16=$(bench_ms "$work/bf16.md" rup+ewa); r16=$(bench_ms "$work/bf16.md" routed)
  figure step_b32 "eager fp32: dense ${ref_d:-?} ms, RUP+EWA ${ref_r:-?} ms"
  figure step_b32 "ewa fp32: dense ${d32:-?} ms (${flops:+$(tflops "$flops" 32 "$d32") TFLOP/s, }$(ratio "$ref_d" "$d32")x eager), RUP+EWA ${e32:-?} ms ($(ratio "$e32" "$d32")x dense, $(ratio "$ref_r" "$e32")x eager), routed ${r32:-?} ms"
  figure step_b32 "ewa bf16: dense ${d16:-?} ms (${flops:+$(tflops "$flops" 32 "$d16") TFLOP/s, }$(ratio "$d32" "$d16")x fp32), RUP+EWA ${e16:-?} ms ($(ratio "$e16" "$d16")x dense), routed ${r16:-?} ms"

  step step_b128_b256 200 bash -c "
    set -e
    for b in 128 256; do
      echo \"## ewa bf16 batch \$b\"
      '$ewa' bench train-step --config $cfg --batch-size \$b --variants dense rup+ewa --set train.precision=bf16 \
        --set train.device=$dev --warmup 5 --steps 15 --rounds 2
    done"
  local b ms
  for b in 128 256; do
    awk -v b="$b" '$0 ~ "## ewa bf16 batch "b {p=1; next} /^## / {p=0} p' "$OUTDIR/step_b128_b256.txt" >"$work/b$b.md"
    for v in dense rup+ewa; do
      ms=$(bench_ms "$work/b$b.md" "$v")
      [ -n "$ms" ] && figure step_b128_b256 "batch $b $v bf16: $ms ms, $(awk -v b="$b" -v ms="$ms" 'BEGIN {printf "%.0f", b / ms * 1000}') samples/s${flops:+, $(tflops "$flops" "$b" "$ms") TFLOP/s = $(awk -v t="$(tflops "$flops" "$b" "$ms")" -v p="$peak" 'BEGIN {printf "%.1f", 100 * t / p}')% of $peak}"
    done
  done

  # End to end on cuda, on the synthetic shapes as .npy class folders (no HDF5 here).
  local data="$work/synth" runs="$work/runs"
  local on_gpu=(--set data.dataset=modelnet_folder --set data.root="$data" --set train.device=$dev --set train.runs_dir="$runs")
  step synth 120 "$ewa" data synth -o "$data" --format npy
  step train_fp32 150 "$ewa" train --config configs/synth_points_ewa.json "${on_gpu[@]}" --set train.epochs=8 --name fp32
  figure train_fp32 "$(run_result train_fp32)"
  figure train_fp32 "$(run_speed train_fp32)"
  step train_bf16 150 "$ewa" train --config configs/synth_points_ewa.json "${on_gpu[@]}" --set train.epochs=4 \
    --set train.precision=bf16 --name bf16
  figure train_bf16 "$(run_result train_bf16)"
  figure train_bf16 "$(run_speed train_bf16)"
  # Resume as a user does: the fp32 run again, stopped with Ctrl-C (SIGINT) after its second
  # epoch (it checkpoints and exits 130), then the same command with --resume. It ends where the
  # uninterrupted run did, up to the GPU's own nondeterminism (Train.ResumeOnTheGpu... in the
  # suite checks that bound).
  step resume 150 bash -c "
    '$ewa' train --config configs/synth_points_ewa.json ${on_gpu[*]@Q} --set train.epochs=8 --name resumed >'$work/first_half.txt' 2>&1 &
    pid=\$!
    until grep -q '^epoch 2 done' '$work/first_half.txt'; do kill -0 \$pid 2>/dev/null || break; sleep 0.1; done
    kill -INT \$pid; wait \$pid; rc=\$?
    cat '$work/first_half.txt'; echo \"(first half exited with \$rc)\"
    [ \$rc -eq 130 ] || exit 1
    '$ewa' train --config configs/synth_points_ewa.json ${on_gpu[*]@Q} --set train.epochs=8 --name resumed --resume '$runs/resumed/last.pt'"
  figure resume "$(last_line_with "$OUTDIR/resume.txt" '^resumed from')"
  figure resume "$(last_line_with "$OUTDIR/resume.txt" '^done in' | grep -oE 'final test [^(]*')"
  if passed train_fp32; then figure resume "uninterrupted: $(last_line_with "$OUTDIR/train_fp32.txt" '^done in' | grep -oE 'final test [^(]*')"; fi
  step pretrain 150 "$ewa" pretrain --config configs/synth_pretrain.json "${on_gpu[@]}" --set train.epochs=2
  figure pretrain "$(run_result pretrain)"
  step finetune_official 180 bash -c "
    set -e
    '$PY' tests/fixtures/official_point_models.py make '$work/official' --variant point_mae --dim 128 --depth 4 --heads 4 \
      --groups 32 --group-size 16 --points 512 --classes 8
    '$ewa' finetune --init '$work/official/pretrain.pth' --config configs/synth_points_ewa.json ${on_gpu[*]@Q} \
      --set train.epochs=2 --name from_official"
  figure finetune_official "$(run_result finetune_official)"
  local ckpt="$runs/fp32/last.pt"
  step eval 120 bash -c "
    set -e
    for p in single tta vote; do echo \"## \$p\"; '$ewa' eval '$ckpt' --protocol \$p --set train.device=$dev --set data.root='$data' --set data.fps_points=600 --set data.votes=10; done"
  figure eval "$(grep -oE 'test: [^(]*' "$OUTDIR/eval.txt" | sed 's/^test: //' | paste -sd '/' | cut -c1-300) (single / tta / vote)"
  step predict 90 bash -c "
    set -e
    '$ewa' data synth-files -o '$work/files' --format npy
    '$ewa' predict '$ckpt' '$work/files' --set train.device=$dev"
  figure predict "$(last_line_with "$OUTDIR/predict.txt" 'files predicted')"
  finish_run "$t_start" "$peak"
}

finish_run() {
  local total=$(( $(date +%s) - $1 ))
  {
    echo "# gpu-check, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $total s in all"
    echo
    table
    echo
    echo "TFLOP/s: 3 x the eager reference's forward FLOPs per sample x batch / median step (the same network);"
    echo "share of peak against GPU_CHECK_PEAK_TFLOPS=$2 (dense bf16). Outputs of every step: $OUTDIR/<step>.txt"
  } | tee "$OUTDIR/summary.md"
  tar -czf "$OUTDIR/../results.tar.gz" -C "$OUTDIR" . 2>/dev/null && mv "$OUTDIR/../results.tar.gz" "$OUTDIR/results.tar.gz"
  # The device tool brings back what is under $OUT.
  if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$OUTDIR/summary.md" "$OUTDIR/results.tar.gz" "$OUT/"; fi
}

case "$MODE" in
  prepare) prepare ;;
  run) run ;;
  selftest) selftest ;;
  *) die "usage: bash scripts/gpu-check.sh prepare|run|selftest [DIR]" ;;
esac
