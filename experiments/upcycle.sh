#!/usr/bin/env bash
# The sparse upcycling experiment (Komatsuzaki et al., ICLR 2023) done the way the
# paper did it: experiments/protocol.py (dense run at a constant rate, checkpoints at
# several dense budgets; (a) dense continued, (b) upcycled top-2 of 8 every other
# layer, (c) the same MoE from scratch; one final decay for all; FLOP-matched extra
# budgets; several seeds), then `moe report` on it.
#
# Usage: experiments/upcycle.sh [--long] [--family t5] [--out DIR] [--data DIR] [-- protocol.py flags]
#   default: the make demo size (10-20 minutes on 2 cores, by CPU tier): the 460k-parameter Llama
#            of experiments/configs/llama-460k.json on the large corpus (vocabulary 2048),
#            dense budgets 1 and 4 tokens/parameter, extra budgets +25% and +50%, 3 seeds
#   --long:  dense budgets 0.5, 2, 6 and 20 tokens/parameter, extra budgets +10, 25, 50%,
#            and the Switch variant (s); about 75 minutes on 2 cores
#   --family t5: the paper's own language setting at small scale: the 509k-parameter T5
#            v1.1 of experiments/configs/t5-500k.json on span corruption (128 encoder
#            tokens), upcycled with expert choice in the encoder and top-2 in the decoder,
#            8 experts every other layer; dense budgets 0.5 and 2 tokens/parameter
#            (--long: 0.5, 2 and 6), extra budgets +25% and +50%, 3 seeds
# Writes OUT/summary.json, OUT/table.md and OUT/report/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/moe}
PY=${PY:-/usr/bin/python3}
OUT=runs/upcycle
DATA=runs/large2k
LONG=0
FAMILY=llama
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --long) LONG=1 ;;
    --family) FAMILY=$2; shift ;;
    --out) OUT=$2; shift ;;
    --data) DATA=$2; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "usage: experiments/upcycle.sh [--long] [--family t5] [--out DIR] [--data DIR] [-- protocol.py flags]" >&2; exit 2 ;;
  esac
  shift
done
banner() { printf '\n=== %s ===\n' "$*"; }
case "$FAMILY" in
  llama)
    # 459,328 parameters, 2048 tokens a step: N steps = tokens/param x 459328 / 2048.
    if [ "$LONG" = 1 ]; then PLAN=(--dense 112,450,1350,4500 --budgets 0.1,0.25,0.5 --switch)
    else PLAN=(--dense 224,897 --budgets 0.25,0.5); fi
    CONFIG=experiments/configs/llama-460k.json
    TITLE="llama 460k"
    banner "dataset: every corpus of moe data --corpus large, BPE vocabulary 2048 (16M training tokens)"
    $MOE data --corpus large --vocab-size 2048 --out "$DATA" ;;
  t5)
    # 509,440 parameters; a step reads 8 x (128 encoder + 29 decoder) = 1256 tokens:
    # N steps = tokens/param x 509440 / 1256.
    [ "$OUT" = runs/upcycle ] && OUT=runs/upcycle-t5
    [ "$DATA" = runs/large2k ] && DATA=runs/large2k-t5
    if [ "$LONG" = 1 ]; then PLAN=(--dense 202,806,2418 --budgets 0.25,0.5)
    else PLAN=(--dense 202,806 --budgets 0.25,0.5); fi
    PLAN+=(--seq 128)
    CONFIG=experiments/configs/t5-500k.json
    TITLE="T5 v1.1 509k, span corruption, encoder expert choice + decoder top-2"
    banner "dataset: moe data --corpus large --t5 (T5's special ids, 100 sentinels; vocabulary 2048)"
    $MOE data --corpus large --vocab-size 2048 --t5 --out "$DATA" ;;
  *) echo "experiments/upcycle.sh: --family must be llama or t5, got $FAMILY" >&2; exit 2 ;;
esac

banner "the protocol: ${PLAN[*]} ${EXTRA[*]:-} (experiments/protocol.py; commands in $OUT/seed*/commands.log)"
"$PY" experiments/protocol.py --moe "$MOE" --out "$OUT" --data "$DATA" --config "$CONFIG" \
  --seeds 1,2,3 --jobs 3 --threads 1 --eval-batches 32 "${PLAN[@]}" "${EXTRA[@]}"

banner "report"
N=$("$PY" -c 'import json,sys; print(max(json.load(open(sys.argv[1]))["settings"]["dense"].split(","), key=int))' \
  "$OUT/summary.json")
RUNS=("$OUT/seed1/dense" "$OUT/seed1/N$N/a" "$OUT/seed1/N$N/b" "$OUT/seed1/c")
[ -d "$OUT/seed1/N$N/s" ] && RUNS+=("$OUT/seed1/N$N/s")
$MOE report "${RUNS[@]}" "$OUT" --out "$OUT/report" \
  --title "Sparse upcycling: $TITLE, 8 experts, seeds 1-3 (curves: seed 1, dense budget N = $N)"
