#!/usr/bin/env bash
# The sparse upcycling experiment (Komatsuzaki et al., ICLR 2023) done the way the
# paper did it: experiments/protocol.py (dense run at a constant rate, checkpoints at
# several dense budgets; (a) dense continued, (b) upcycled top-2 of 8 every other
# layer, (c) the same MoE from scratch; one final decay for all; FLOP-matched extra
# budgets; several seeds), then `moe report` on it.
#
# Usage: experiments/upcycle.sh [--long] [--out DIR] [--data DIR] [-- protocol.py flags]
#   default: the make demo size (about 10 minutes on 2 cores): the 460k-parameter Llama
#            of experiments/configs/llama-460k.json on the large corpus (vocabulary 2048),
#            dense budgets 1 and 4 tokens/parameter, extra budgets +25% and +50%, 3 seeds
#   --long:  dense budgets 0.5, 2, 6 and 20 tokens/parameter, extra budgets +10, 25, 50%,
#            and the Switch variant (s); about 75 minutes on 2 cores
# Writes OUT/summary.json, OUT/table.md and OUT/report/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/moe}
PY=${PY:-/usr/bin/python3}
OUT=runs/upcycle
DATA=runs/large2k
LONG=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --long) LONG=1 ;;
    --out) OUT=$2; shift ;;
    --data) DATA=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "usage: experiments/upcycle.sh [--long] [--out DIR] [--data DIR] [-- protocol.py flags]" >&2; exit 2 ;;
  esac
  shift
done
# 459,328 parameters, 2048 tokens a step: N steps = tokens/param x 459328 / 2048.
if [ "$LONG" = 1 ]; then
  PLAN=(--dense 112,450,1350,4500 --budgets 0.1,0.25,0.5 --switch)
else
  PLAN=(--dense 224,897 --budgets 0.25,0.5)
fi
banner() { printf '\n=== %s ===\n' "$*"; }

banner "dataset: every corpus of moe data --corpus large, BPE vocabulary 2048 (16M training tokens)"
$MOE data --corpus large --vocab-size 2048 --out "$DATA"

banner "the protocol: ${PLAN[*]} ${EXTRA[*]:-} (experiments/protocol.py; commands in $OUT/seed*/commands.log)"
"$PY" experiments/protocol.py --moe "$MOE" --out "$OUT" --data "$DATA" --config experiments/configs/llama-460k.json \
  --seeds 1,2,3 --jobs 3 --threads 1 --eval-batches 32 "${PLAN[@]}" "${EXTRA[@]}"

banner "report"
N=$("$PY" -c 'import json,sys; print(max(json.load(open(sys.argv[1]))["settings"]["dense"].split(","), key=int))' \
  "$OUT/summary.json")
RUNS=("$OUT/seed1/dense" "$OUT/seed1/N$N/a" "$OUT/seed1/N$N/b" "$OUT/seed1/c")
[ -d "$OUT/seed1/N$N/s" ] && RUNS+=("$OUT/seed1/N$N/s")
$MOE report "${RUNS[@]}" "$OUT" --out "$OUT/report" \
  --title "Sparse upcycling: llama 460k, 8 experts top-2, seeds 1-3 (curves: seed 1, dense budget N = $N)"
