#!/usr/bin/env bash
# Upcycling speed and memory on a synthetic dense checkpoint of 4.1 GB (random BF16
# Llama, 2.07B parameters, written here by make_synthetic_ckpt):
#   1. `moe upcycle --experts 8` (every other layer, plain copy) under /usr/bin/time -v:
#      wall time and peak resident memory;
#   2. copying the output's bytes with cp on the same disk (+ sync, as moe fsyncs);
#      1 and 2 alternate three times; medians (and the largest RSS) are reported;
#   3. the step-0 check of the result, layer by layer, under /usr/bin/time -v.
# The page cache is dropped before 1 and 2 when allowed (root), so both read cold.
# Usage: bench/upcycle_bench.sh [WORKDIR]   (needs about 35 GB free; removed at the end
# unless KEEP=1). BUILD=build by default.
set -euo pipefail
BUILD=${BUILD:-build}
W=${1:-/tmp/moe-upcycle-bench}
MOE=$BUILD/moe
[ -x "$MOE" ] && [ -x "$BUILD/bench/make_synthetic_ckpt" ] || { echo "build first: make build" >&2; exit 1; }
rm -rf "$W"; mkdir -p "$W"
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$W"' EXIT

source "$(dirname "$0")/lib.sh"

"$BUILD/bench/make_synthetic_ckpt" "$W/dense"
du -sh "$W/dense"

# Three rounds, upcycle then cp, each from a cold page cache: the disk of a shared
# machine is noisy, the medians are reported (and every round is printed).
ups=() cps=() rss=()
for round in 1 2 3; do
  rm -rf "$W/moe"
  drop_caches
  /usr/bin/time -v "$MOE" upcycle --from "$W/dense" --out "$W/moe" --experts 8 --no-check > /dev/null 2> "$W/upcycle.time"
  ups+=("$(secs "$(field 'Elapsed (wall clock)' "$W/upcycle.time")")")
  rss+=("$(field 'Maximum resident set size' "$W/upcycle.time")")
  drop_caches
  cps+=("$(timed_copy "$W/moe" "$W/moe-copy")")
  echo "round $round: upcycle ${ups[-1]} s (max RSS ${rss[-1]} KB), cp + sync ${cps[-1]} s"
done
up_s=$(printf '%s\n' "${ups[@]}" | median)
cp_s=$(printf '%s\n' "${cps[@]}" | median)
up_rss=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
out_bytes=$(du -sb "$W/moe" | cut -f1)

/usr/bin/time -v "$MOE" upcycle --from "$W/dense" --out "$W/moe" --check-only --check-batch 2 --check-seq 64 \
  2> "$W/check.time" | tee "$W/check.txt"
ck_s=$(secs "$(field 'Elapsed (wall clock)' "$W/check.time")")
ck_rss=$(field 'Maximum resident set size' "$W/check.time")

printf '{"out_gb":%.2f,"upcycle_s":%.1f,"upcycle_max_rss_mb":%.0f,"cp_sync_s":%.1f,"upcycle_over_cp":%.2f,' \
  "$(calc "$out_bytes / 1e9")" "$up_s" "$(calc "$up_rss / 1024")" "$cp_s" "$(calc "$up_s / $cp_s")"
printf '"check_s":%.1f,"check_max_rss_mb":%.0f}\n' "$ck_s" "$(calc "$ck_rss / 1024")"
