#!/usr/bin/env bash
# make demo: the main job end to end on the default data (real English text from
# Debian packages): dataset, dense pretraining, evaluation, a generated sample.
# Everything lands in runs/demo/ (not tracked by git). Re-running reuses the dataset
# and trains afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/moe}
RUNS=${RUNS:-runs/demo}
STEPS=${DEMO_STEPS:-600}

banner() { printf '\n=== %s ===\n' "$*"; }
start=$(date +%s)

banner "1. dataset: King James Bible + Jane Austen's novels, SentencePiece BPE (8192)"
$MOE data --out "$RUNS/data"

banner "2. dense pretraining: Llama-family 'small' preset, bf16 compute, $STEPS steps of 8 x 256 tokens"
rm -rf "$RUNS/dense"
$MOE train --data "$RUNS/data" --out "$RUNS/dense" --preset small --family llama --compute bf16 \
  --steps "$STEPS" --batch 8 --seq 256 --lr 1e-3 --min-lr 1e-4 --warmup 50 \
  --eval-every 200 --eval-batches 8 --log-every 50

banner "3. evaluation on the held-out text (ln(8192) = 9.01 is a uniform guess)"
$MOE eval --model "$RUNS/dense" --data "$RUNS/data"

banner "4. a sample (temperature 0.8, top-k 40)"
$MOE generate --model "$RUNS/dense" --prompt "And it came to pass" --max-tokens 120 --temperature 0.8 --top-k 40 --seed 1

echo
echo "demo finished in $(( $(date +%s) - start )) s; the run is in $RUNS/dense (log.jsonl, checkpoint-$STEPS/)"
