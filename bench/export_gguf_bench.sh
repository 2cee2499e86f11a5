#!/usr/bin/env bash
# GGUF export speed and memory on the synthetic dense checkpoint of 4.1 GB (random
# BF16 Llama, 2.07B parameters, written here by make_synthetic_ckpt), for each output
# dtype (f16: every weight converted; bf16: the same bits, q/k rows permuted):
#   1. `moe export --format gguf` under /usr/bin/time -v: wall time, peak resident memory;
#   2. cp of the output file on the same disk (+ sync, as moe fsyncs);
#   1 and 2 alternate three times from a cold page cache (when root); medians (and the
#   largest RSS) are reported.
# The checkpoint has no tokenizer: a 512-piece one is trained on Debian's license texts
# (the embedding's rows past it are exported as unused pieces).
# Usage: bench/export_gguf_bench.sh [WORKDIR]   (needs about 15 GB free; removed at the
# end unless KEEP=1). BUILD=build by default.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BUILD=${BUILD:-build}
W=${1:-/tmp/moe-gguf-bench}
MOE=$BUILD/moe
[ -x "$MOE" ] && [ -x "$BUILD/bench/make_synthetic_ckpt" ] || { echo "build first: make build" >&2; exit 1; }
rm -rf "$W"; mkdir -p "$W/text"
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$W"' EXIT

"$BUILD/bench/make_synthetic_ckpt" "$W/dense"
find /usr/share/common-licenses -maxdepth 1 -type f -exec cp {} "$W/text/" \;
"$MOE" data --out "$W/ds" --input "$W/text" --vocab-size 512 > /dev/null
cp "$W/ds/tokenizer.model" "$W/dense/"
du -sh "$W/dense"

for dtype in f16 bf16; do
  exs=() cps=() rss=()
  for round in 1 2 3; do
    rm -f "$W/m.gguf"
    drop_caches
    /usr/bin/time -v "$MOE" export --format gguf --dtype "$dtype" --model "$W/dense" --out "$W/m.gguf" \
      > /dev/null 2> "$W/export.time"
    exs+=("$(secs "$(field 'Elapsed (wall clock)' "$W/export.time")")")
    rss+=("$(field 'Maximum resident set size' "$W/export.time")")
    drop_caches
    cps+=("$(timed_copy "$W/m.gguf" "$W/copy.gguf")")
    echo "$dtype round $round: export ${exs[-1]} s (max RSS ${rss[-1]} KB), cp + sync ${cps[-1]} s"
  done
  ex_s=$(printf '%s\n' "${exs[@]}" | median)
  cp_s=$(printf '%s\n' "${cps[@]}" | median)
  ex_rss=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
  out_bytes=$(stat -c %s "$W/m.gguf")
  printf '{"dtype":"%s","out_gb":%.2f,"export_s":%.1f,"export_max_rss_mb":%.0f,"cp_sync_s":%.1f,"export_over_cp":%.2f}\n' \
    "$dtype" "$(calc "$out_bytes / 1e9")" "$ex_s" "$(calc "$ex_rss / 1024")" "$cp_s" "$(calc "$ex_s / $cp_s")"
done
