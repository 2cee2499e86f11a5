#!/usr/bin/env bash
# make demo: the whole story on real English text from Debian packages: the dataset,
# the sparse upcycling experiment done the paper's way at the largest size that fits
# in 10-20 minutes on 2 cores (10 with AVX-512 in bf16, 20 on an AVX2-only CPU in f32:
# --compute auto, README "Precision and speed on each CPU"; experiments/upcycle.sh: dense pretraining
# at a constant rate, upcycling with its step-0 check, (a) dense continued, (b)
# upcycled, (c) MoE from scratch, 2 dense budgets x 2 extra budgets x 3 seeds), the
# comparison with its error bars, the HTML report, and a sample from an upcycled model.
# Everything lands in runs/demo/ (not tracked by git). Re-running reuses the dataset
# and trains afresh. experiments/upcycle.sh --long is the closer reproduction.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/moe}
RUNS=${RUNS:-runs/demo}
start=$(date +%s)

MOE=$MOE experiments/upcycle.sh --out "$RUNS/upcycle" --data "$RUNS/large2k"

N=$(ls -d "$RUNS"/upcycle/seed1/N* | sed 's/.*N//' | sort -n | tail -1)
B=$(ls -d "$RUNS/upcycle/seed1/N$N"/b_f* | awk -F_f '{print $NF, $0}' | sort -g | tail -1 | cut -d' ' -f2)
printf '\n=== a sample from the upcycled MoE %s (temperature 0.8, top-k 40) ===\n' "$B"
$MOE generate --model "$B" --prompt "And it came to pass" --max-tokens 60 --temperature 0.8 --top-k 40 --seed 1

echo
echo "demo finished in $(( $(date +%s) - start )) s"
echo "table: $RUNS/upcycle/table.md"
echo "report: $RUNS/upcycle/report/index.html (open it in a browser; it loads nothing from the network)"
