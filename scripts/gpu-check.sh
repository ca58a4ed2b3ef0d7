#!/usr/bin/env bash
# The GPU check, in two steps:
#   bash scripts/gpu-check.sh prepare [DIR]   on this machine (Debian, scripts/install-deps.sh done):
#       copies what a bare GPU image lacks into DIR (default gpu-deps/, git-ignored): the
#       header-only libraries (nlohmann-json, CLI11, Gloo's headers) with their CMake configs,
#       zlib (headers and static library) and GoogleTest's sources.
#   bash scripts/gpu-check.sh run [DIR]        on a machine with a GPU and PyTorch (CUDA 13) but none
#       of our Debian libraries (e.g. through the device tool, carrying DIR): builds GoogleTest,
#       configures the CUDA variant (HDF5, PCL, Open3D, cairo off), builds, runs the CUDA-vs-CPU
#       kernel tests and the multi-process tests, `ewa bench ops`, the train-step benchmark of the
#       Point-MAE-size classifier dense vs EWA, the official per-step resampling against that
#       step (`ewa bench resample`), and a short training run on the GPU, then prints
#       one table. Output goes to DIR/results/ as well.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-}
DIR=${2:-gpu-deps}
die() { echo "gpu-check: error: $*" >&2; exit 1; }

prepare() {
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
  echo "gpu-check: prepared $DIR ($(du -sh "$DIR" | cut -f1)); carry it to the GPU machine and run: bash scripts/gpu-check.sh run $DIR"
}

run() {
  [ -d "$DIR/include/nlohmann" ] || die "$DIR is not prepared: run 'bash scripts/gpu-check.sh prepare $DIR' where install-deps ran"
  local abs
  abs=$(cd "$DIR" && pwd)
  local out="$abs/results"
  mkdir -p "$out"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
  local nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  [ -x "$nvcc" ] || die "no nvcc (set CUDACXX): the CUDA kernels cannot be built"
  if [ ! -f "$abs/gtest/lib/cmake/GTest/GTestConfig.cmake" ] && [ ! -f "$abs/gtest/lib64/cmake/GTest/GTestConfig.cmake" ]; then
    cmake -S "$abs/src/googletest" -B "$abs/gtest-build" -DCMAKE_INSTALL_PREFIX="$abs/gtest" -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_GMOCK=OFF >/dev/null
    cmake --build "$abs/gtest-build" -j "$(nproc)" >/dev/null
    cmake --install "$abs/gtest-build" >/dev/null
  fi
  local arch
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
  cmake -S . -B build-gpu -G "$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$abs;$abs/gtest" -DZLIB_ROOT="$abs" \
    -DEWA_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DEWA_CUDA_ARCHITECTURES="${arch:-90}" \
    -DEWA_WITH_HDF5=OFF -DEWA_WITH_PCL=OFF -DEWA_WITH_OPEN3D=OFF -DEWA_WITH_CAIRO=OFF | tee "$out/configure.txt"
  cmake --build build-gpu -j "$(nproc)" 2>&1 | tail -3
  (cd build-gpu && ctest --output-on-failure -R 'Cuda|EveryDevice|Dist' 2>&1 | tee "$out/ctest.txt" | tail -15)
  build-gpu/ewa bench ops 2>&1 | tee "$out/bench_ops.txt"
  build-gpu/ewa bench train-step --config configs/modelnet40_pointmae_ewa.json --set train.device=cuda --batch-size 32 \
    2>&1 | tee "$out/bench_train_step.txt"
  build-gpu/ewa bench train-step --config configs/modelnet40_pointmae_ewa.json --set train.device=cuda --batch-size 32 \
    --set train.precision=bf16 2>&1 | tee "$out/bench_train_step_bf16.txt"
  build-gpu/ewa bench resample --set train.device=cuda --step-repeats 10 --record "$out/bench_resample.md" \
    2>&1 | tee "$out/bench_resample.txt"
  build-gpu/ewa data synth -o "$abs/synth" >/dev/null
  local gpu=(--set data.root="$abs/synth" --set train.device=cuda --set train.runs_dir="$abs/runs" --set train.epochs=3)
  build-gpu/ewa train --config configs/synth_points_ewa.json "${gpu[@]}" 2>&1 | tee "$out/train.txt" | tail -3
  build-gpu/ewa train --config configs/synth_points_ewa.json "${gpu[@]}" --set train.precision=bf16 --name synth_bf16 \
    2>&1 | tee "$out/train_bf16.txt" | tail -3
  build-gpu/ewa pretrain --config configs/synth_pretrain.json "${gpu[@]}" --set train.epochs=2 2>&1 | tee "$out/pretrain.txt" | tail -3
  build-gpu/ewa eval "$abs/runs/synth_points_ewa/last.pt" 2>&1 | tee "$out/eval.txt"
  build-gpu/ewa data synth-files -o "$abs/files" --format npy >/dev/null
  build-gpu/ewa predict "$abs/runs/synth_points_ewa/last.pt" "$abs/files" 2>&1 | tee "$out/predict.txt" | tail -5
  echo
  echo "| check | result |"
  echo "|---|---|"
  echo "| GPU | $(cat "$out/gpu.txt" 2>/dev/null || echo unknown) |"
  echo "| CUDA kernel and multi-process tests | $(grep -E 'tests passed' "$out/ctest.txt" || echo 'see ctest.txt') |"
  echo "| short training (3 epochs, cuda) | $(grep -E '^done in' "$out/train.txt" || echo 'see train.txt') |"
  echo "| the same in bf16 autocast | $(grep -E '^done in' "$out/train_bf16.txt" || echo 'see train_bf16.txt') |"
  echo "| pretraining (2 epochs, cuda) | $(grep -E '^done in' "$out/pretrain.txt" || echo 'see pretrain.txt') |"
  echo "| eval on cuda | $(tail -1 "$out/eval.txt") |"
  echo "| predict on cuda | $(grep -c '' "$out/predict.txt") lines, see predict.txt |"
  echo "| per-step resampling, share of the step (goal < 5%) | $(grep -E '^\| (mn40|scan)' "$out/bench_resample.txt" | awk -F'|' '{printf "%s%s", sep, $2 ":" $9; sep=","}') |"
  echo "(bench ops and train-step tables above; every output in $out/)"
}

case "$MODE" in
  prepare) prepare ;;
  run) run ;;
  *) die "usage: bash scripts/gpu-check.sh prepare|run [DIR]" ;;
esac
