#!/usr/bin/env bash
# Runs libFuzzer targets of fuzz/ for SECONDS each (make fuzz): every target, or those named after
# SECONDS (fuzz/run.sh build-fuzz 600 off npy). Seeds from make_corpus.py, the growing corpus in
# BUILD/corpus/<target>, crashes in fuzz/artifacts/<target>/; each target's latest result is a row
# in BUILD/fuzz_results.md. Exits non-zero when any target run now found a crash.
set -uo pipefail
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-600}
ALL="off text_points npy ply idx cifar config checkpoint weights"
shift 2 2>/dev/null || shift $#
TARGETS=${*:-$ALL}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${EWA_VENV:-/opt/ewa-venv}/bin/python
mkdir -p "$BUILD"
"$PY" "$HERE/make_corpus.py" "$BUILD/seeds.$$" >/dev/null 2>&1 && rm -rf "$BUILD/seeds" && mv "$BUILD/seeds.$$" "$BUILD/seeds"
# Inputs that once crashed a parser (now regression tests) are seeds too.
cp "$HERE"/../tests/data/fuzz_*.bin "$BUILD/seeds/checkpoint/" 2>/dev/null
export ASAN_OPTIONS=detect_leaks=0:alloc_dealloc_mismatch=0:protect_shadow_gap=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
for t in $TARGETS; do
  case " $ALL " in *" $t "*) ;; *) echo "fuzz/run.sh: unknown target '$t' (expected one of: $ALL)" >&2; exit 2 ;; esac
done
for t in $TARGETS; do
  mkdir -p "$BUILD/corpus/$t" "$HERE/artifacts/$t"
  case $t in checkpoint|weights) max_len=65536 ;; *) max_len=16384 ;; esac
  log="$BUILD/fuzz_$t.log"
  "$BUILD/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=2048 -max_len=$max_len \
    -print_final_stats=1 -artifact_prefix="$HERE/artifacts/$t/" "$BUILD/corpus/$t" "$BUILD/seeds/$t" >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  corpus=$(ls "$BUILD/corpus/$t" | wc -l)
  if [ $rc -eq 0 ]; then result="no crash"; else result="CRASH (exit $rc; see $log and fuzz/artifacts/$t/)"; failed=1; fi
  echo "| $t | $SECONDS_EACH | ${runs:-?} | ${cov:-?} | $corpus | $result | $(date -u +%F) |" > "$BUILD/fuzz_result_$t.row"
  echo "fuzz_$t: ${runs:-?} runs, coverage ${cov:-?}: $result"
done
results="$BUILD/fuzz_results.md"
{
  echo "| target | seconds | runs | coverage (edges) | corpus | result | date |"
  echo "|---|---:|---:|---:|---:|---|---|"
  for t in $ALL; do cat "$BUILD/fuzz_result_$t.row" 2>/dev/null; done
} > "$results"
cat "$results"
exit $failed
