#!/usr/bin/env bash
# The sparse upcycling experiment (Komatsuzaki et al., ICLR 2023) on the default
# corpus, driven by the moe binary:
#   dense  pretrain a dense Llama-family model for N steps;
#   (a)    continue it dense for M_a steps, M_a chosen so that (a) spends the same
#          extra training FLOPs as (b);
#   (b)    upcycle its checkpoint (E experts, every other layer, top-2 renormalised,
#          so step 0 is the dense model; EXPERTS, TOPK, COMBINE change that) and
#          train M steps;
#   (c)    train the same MoE architecture from scratch for N+M steps.
# Same rules everywhere: warmup then cosine decay over each run's own steps, the same
# seed, batch and learning rates; (a) and (b) continue the data order where the dense
# run stopped (--continue-data), so no run sees a batch twice before (c) does.
# Writes OUT/report/{table.md,summary.json,curves.svg,curves_tokens.svg}.
#
# Usage: experiments/upcycle.sh [--long | --steps N M] [--out DIR] [--data DIR]
#   default: N=250, M=150 (sized for make demo: about 9 minutes on 2 cores)
#   --long:  N=1500, M=1500 (about an hour): a closer reproduction (the paper
#            continues for a sizeable fraction of the dense budget)
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/moe}
PY=${PY:-/usr/bin/python3}
OUT=runs/upcycle
DATA=runs/demo/data
N=250 M=150 EVAL=50
while [ $# -gt 0 ]; do
  case "$1" in
    --long) N=1500 M=1500 EVAL=150 ;;
    --steps) N=$2 M=$3 EVAL=$(( ($2 + 5) / 6 )); shift 2 ;;
    --out) OUT=$2; shift ;;
    --data) DATA=$2; shift ;;
    *) echo "usage: experiments/upcycle.sh [--long | --steps N M] [--out DIR] [--data DIR]" >&2; exit 2 ;;
  esac
  shift
done
E=${EXPERTS:-8} K=${TOPK:-2} COMBINE=${COMBINE:-renorm}  # e.g. TOPK=1 COMBINE=raw: Switch
COMMON=(--data "$DATA" --compute bf16 --batch 8 --seq 256 --lr 1e-3 --min-lr 1e-4 --warmup 50
        --eval-every "$EVAL" --eval-batches 8 --log-every 50 --seed 1)
banner() { printf '\n=== %s ===\n' "$*"; }
# Training FLOPs per token of a run, from its log (cumulative flops / tokens).
fpt() { "$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if "flops" in j and "loss" in j: r = j["flops"] / j["tokens"]
print(r)' "$1/log.jsonl"; }

[ -f "$DATA/meta.json" ] || $MOE data --out "$DATA"
rm -rf "$OUT/dense" "$OUT/upcycled" "$OUT/a" "$OUT/b" "$OUT/c" "$OUT/report"
mkdir -p "$OUT"

banner "dense pretraining: $N steps"
$MOE train "${COMMON[@]}" --out "$OUT/dense" --preset small --family llama --steps "$N"

banner "upcycling: $E experts, every other layer, top-$K $COMBINE (renorm: step 0 = the dense model)"
$MOE upcycle --from "$OUT/dense" --out "$OUT/upcycled" --experts "$E" --top-k "$K" --combine "$COMBINE" --check-data "$DATA"

banner "(b) upcycled MoE: $M steps"
$MOE train "${COMMON[@]}" --out "$OUT/b" --init "$OUT/upcycled" --continue-data --steps "$M"

MA=$("$PY" -c "import sys; print(round($M * $(fpt "$OUT/b") / $(fpt "$OUT/dense")))")
banner "(a) dense continued: $MA steps (the extra FLOPs of (b))"
$MOE train "${COMMON[@]}" --out "$OUT/a" --init "$OUT/dense" --continue-data --steps "$MA"

banner "(c) the same MoE from scratch: $((N + M)) steps"
$MOE train "${COMMON[@]}" --out "$OUT/c" --config "$OUT/upcycled/config.json" --steps "$((N + M))"

banner "comparison"
"$PY" experiments/upcycle_report.py --dense "$OUT/dense" --a "$OUT/a" --b "$OUT/b" --c "$OUT/c" --out "$OUT/report" \
  --title "Sparse upcycling on KJV + Austen: llama small, $E experts top-$K $COMBINE, N=$N, M=$M"
echo "plot: $OUT/report/curves.svg (and curves_tokens.svg)"
