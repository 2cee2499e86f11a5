#!/usr/bin/env bash
# Runs one libFuzzer target for $FUZZ_SECONDS (default 60): the ctest `fuzz` label.
# $FUZZ_MAX_LEN, when set, is libFuzzer's -max_len (default: guessed from the corpus,
# a few KB; deep-nesting bugs need inputs of ~100 KB).
#   run_fuzz.sh BINARY NAME WORKDIR LSAN_SUPPRESSIONS
# Corpus: WORKDIR/corpus/NAME (grows, kept between runs) + WORKDIR/seeds/NAME (fuzz_seeds).
# A crash, sanitizer report, leak, timeout (10 s per input), out-of-memory (2 GB RSS)
# or a single allocation above 1 GB fails the test; the input that caused it is saved
# as WORKDIR/artifacts/NAME-crash-... (replay: BINARY that-file).
set -uo pipefail
bin=$1 name=$2 work=$3 supp=$4
secs=${FUZZ_SECONDS:-60}
corpus=$work/corpus/$name seeds=$work/seeds/$name arts=$work/artifacts log=$work/logs/$name.log
mkdir -p "$corpus" "$arts" "$work/logs"
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
  ${FUZZ_MAX_LEN:+-max_len=$FUZZ_MAX_LEN} -artifact_prefix="$arts/$name-" "$corpus" "$seeds" >"$log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
secs_run=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
echo "fuzz $name: exit $rc, ${runs:-?} executions in ${secs_run:-?} s, corpus $(ls "$corpus" | wc -l) files (log $log)"
if [ "$rc" -ne 0 ]; then
  tail -n 60 "$log"
  echo "fuzz $name: FAILED; the input is in $arts/ (replay: $bin FILE)" >&2
fi
exit "$rc"
