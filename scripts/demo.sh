#!/usr/bin/env bash
# make demo: the whole story on the default data (real English text from Debian
# packages): dataset, dense pretraining, upcycling with its step-0 check, continued
# training of the upcycled MoE against the dense baseline and an MoE trained from
# scratch, the comparison table and plot, and a sample from the upcycled model.
# Everything lands in runs/demo/ (not tracked by git). Re-running reuses the dataset
# and trains afresh. The experiment itself is experiments/upcycle.sh (--long for a
# closer reproduction).
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/moe}
RUNS=${RUNS:-runs/demo}
start=$(date +%s)

printf '\n=== dataset: King James Bible + Jane Austen'"'"'s novels, SentencePiece BPE (8192) ===\n'
$MOE data --out "$RUNS/data"

MOE=$MOE experiments/upcycle.sh --out "$RUNS" --data "$RUNS/data"

printf '\n=== a sample from the upcycled MoE after its continued training (temperature 0.8, top-k 40) ===\n'
$MOE generate --model "$RUNS/b" --prompt "And it came to pass" --max-tokens 80 --temperature 0.8 --top-k 40 --seed 1

echo
echo "demo finished in $(( $(date +%s) - start )) s; runs in $RUNS/{dense,upcycled,a,b,c}, report in $RUNS/report/"
