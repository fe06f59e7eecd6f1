#!/usr/bin/env bash
# The documented small fine-tuning run (docs/FINETUNING.md): a tiny PaliGemma 2 (the random
# fixture tests/fixtures/models/pg2_gqa_window) learns visual questions about the generated
# world (colour, shape and count of one object) from scratch. Validation loss and VQA accuracy
# are measured before the first step and every 100 steps; the answers of each pass are kept.
# About 10 minutes on 2 cores.
#
# Usage: bash tools/finetune_demo.sh [WORK_DIR] [CLI]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-/tmp/pg-finetune-demo}"
CLI="${2:-$ROOT/build/paligemma}"
MODEL="$ROOT/tests/fixtures/models/pg2_gqa_window"
mkdir -p "$WORK"
world() {  # seed images split
  "$CLI" world --out "$WORK/data" --seed "$1" --images "$2" --split-name "$3" --size 56 --tasks answer \
    --max-objects 1 --text-probability 0
}
world 21 800 train   # 1600 questions
world 22 50 val      # 100 held-out questions, another seed
rm -rf "$WORK/run"
"$CLI" finetune --model "$MODEL" --train "$WORK/data/train.jsonl" --val "$WORK/data/val.jsonl" --out "$WORK/run" \
  --epochs 8 --batch-size 16 --lr 3e-3 --clip-norm 1 --warmup 0.05 \
  --eval-every 100 --eval-metrics -1 --eval-max-new-tokens 8
echo "== validation passes ($WORK/run/metrics.jsonl):"
grep '"val_loss"' "$WORK/run/metrics.jsonl"
echo "answers per pass: $WORK/run/validation/step_N.jsonl; loss curve: $WORK/run/loss.svg"
