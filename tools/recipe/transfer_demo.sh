#!/usr/bin/env bash
# Transfer, demonstrated (issue 6, point 5): the world model's pt checkpoint fine-tuned on something
# it never saw, against the same architecture trained from scratch on the same examples.
# TASK (what is new; each is held back from the recipe's world by `paligemma world`'s defaults):
#   hexagon  captions of scenes with a new shape class, the hexagon (--shapes ...,hexagon);
#            scored by caption CIDEr, and how many test hexagons the captions name
#   exists   a new question type, "is there a <colour> object?" (--question-types exists)
#   size     a new question type, "what size is the <colour> <shape>?" (--question-types size)
#
#   new data  (`paligemma world`, seeds the recipe never uses)
#   -> pt run(s):      finetune from PT_MODEL           at each of PT_LRS
#   -> scratch run(s): finetune from a fresh `init` of the same config and tokenizer, at each
#                      of SCRATCH_LRS (every weight random: no SigLIP pretraining, no stages)
#   -> each run: the validation metric every EVAL_EVERY steps (the curves), then `eval` on the
#      held-out test split; per arm, the learning rate with the best final validation metric is
#      the one reported (the test split chooses nothing)
#   -> OUT/transfer.md (table), OUT/transfer.svg (validation metric against step), OUT/*.json
#
# Usage: tools/recipe/transfer_demo.sh [PT_MODEL] [OUT_DIR]
#   PT_MODEL: default runs/world-model/stage2/model (tools/recipe/train_world_model.sh's pt;
#             models/paligemma-world-pt is the bundled one)
#   OUT_DIR:  default runs/transfer-TASK. A rerun continues there (finished runs are kept, more
#             learning rates may be added); other data or training settings need another OUT_DIR.
# Knobs (environment): TASK, TRAIN_EXAMPLES, TEST_EXAMPLES, VAL_EXAMPLES, STEPS, BATCH,
# EVAL_EVERY, PT_LRS, SCRATCH_LRS, THREADS (0 = all cores).
# Results of the run in docs/WORLD_MODEL.md ("Transfer").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PG="${PG:-$ROOT/build/paligemma}"
PT="${1:-$ROOT/runs/world-model/stage2/model}"
TASK="${TASK:-hexagon}"
OUT="${2:-$ROOT/runs/transfer-$TASK}"
TRAIN_EXAMPLES="${TRAIN_EXAMPLES:-300}"
VAL_EXAMPLES="${VAL_EXAMPLES:-50}"
TEST_EXAMPLES="${TEST_EXAMPLES:-200}"
STEPS="${STEPS:-120}"
BATCH="${BATCH:-16}"
EVAL_EVERY="${EVAL_EVERY:-30}"
PT_LRS="${PT_LRS:-1e-5 3e-5 1e-4 3e-4}"
SCRATCH_LRS="${SCRATCH_LRS:-3e-4 1e-3}"
THREADS="${THREADS:-0}"

case "$TASK" in
  hexagon) WORLD_FLAGS=(--tasks caption --shapes circle,square,triangle,rectangle,star,ring,hexagon)
           METRIC=caption.cider; METRIC_NAME="caption CIDEr"; MAX_NEW=48;;
  exists|size) WORLD_FLAGS=(--tasks answer --question-types "$TASK" --questions 1)
           METRIC=answer.vqa_accuracy; METRIC_NAME="VQA accuracy"; MAX_NEW=8;;
  *) echo "transfer: TASK must be hexagon, exists or size, got '$TASK'" >&2; exit 1;;
esac
[ -x "$PG" ] || { echo "transfer: $PG not built (cmake -S . -B build && cmake --build build)" >&2; exit 1; }
[ -e "$PT/config.json" ] || { echo "transfer: no pt model at $PT (run tools/recipe/train_world_model.sh)" >&2; exit 1; }
SIZE="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vision_config"]["image_size"])' "$PT/config.json")"
mkdir -p "$OUT"
# Everything the runs in OUT depend on but the learning rate: a rerun must match it.
SETTINGS="task=$TASK train=$TRAIN_EXAMPLES val=$VAL_EXAMPLES test=$TEST_EXAMPLES steps=$STEPS batch=$BATCH eval_every=$EVAL_EVERY size=$SIZE pt=$(cd "$PT" && pwd)"
if [ -e "$OUT/settings.txt" ]; then
  [ "$(cat "$OUT/settings.txt")" = "$SETTINGS" ] || {
    echo "transfer: $OUT holds runs made with other settings:" >&2
    echo "  there: $(cat "$OUT/settings.txt")" >&2
    echo "  now:   $SETTINGS" >&2
    echo "  (use another OUT_DIR, or the same settings)" >&2
    exit 1
  }
else
  echo "$SETTINGS" > "$OUT/settings.txt"
fi
W="$OUT/world"
# Seeds no stage of the recipe uses (it uses 1, 1000001, 2000001, 3000001).
for split in train:4000001:$TRAIN_EXAMPLES val:4200001:$VAL_EXAMPLES test:4100001:$TEST_EXAMPLES; do
  IFS=: read -r name seed n <<< "$split"
  [ -s "$W/$name.jsonl" ] && continue
  "$PG" world --out "$W" --seed "$seed" --images "$n" --size "$SIZE" "${WORLD_FLAGS[@]}" --split-name "$name"
done

[ -e "$OUT/scratch-init/config.json" ] ||
  "$PG" init --config "$PT/config.json" --tokenizer "$PT/tokenizer.model" --out "$OUT/scratch-init" --seed 1

# finetune_run ARM LR START: one run, resumable; its final validation accuracy -> OUT/ARM-LR/done
finetune_run() {
  local run="$OUT/$1-lr$2"
  [ -e "$run/done" ] && return 0
  echo "transfer: [$1, lr $2] from $3, $STEPS steps of $BATCH on $(wc -l < "$W/train.jsonl") examples"
  "$PG" finetune --model "$3" --train "$W/train.jsonl" --val "$W/val.jsonl" --out "$run" \
    --batch-size "$BATCH" --max-steps "$STEPS" --lr "$2" --warmup 0.1 --clip-norm 1 \
    --eval-every "$EVAL_EVERY" --eval-metrics -1 --eval-max-new-tokens "$MAX_NEW" --save-every 20 \
    --threads "$THREADS" --export-dtype bf16 $([ -e "$run/state/state.json" ] && echo --resume || true)
  "$PG" eval --model "$run/model" --data "$W/test.jsonl" --max-new-tokens "$MAX_NEW" --threads "$THREADS" --quiet \
    --json "$run/test.json" --predictions "$run/test_predictions.jsonl" > /dev/null
  touch "$run/done"
}
for lr in $PT_LRS; do finetune_run pt "$lr" "$PT"; done
for lr in $SCRATCH_LRS; do finetune_run scratch "$lr" "$OUT/scratch-init"; done
"$PG" eval --model "$PT" --data "$W/test.jsonl" --max-new-tokens "$MAX_NEW" --threads "$THREADS" --quiet \
  --json "$OUT/pt-zero-shot.json" --predictions "$OUT/pt-zero-shot_predictions.jsonl" > /dev/null

# The table, and the curves of the chosen run of each arm.
python3 "$ROOT/tools/recipe/transfer_report.py" "$OUT" "$METRIC"
read -r pt_best scratch_best < "$OUT/chosen.txt"
"$PG" plot --out "$OUT/transfer.svg" --metric "val_metrics.$METRIC" --y-label "validation $METRIC_NAME" \
  --title "$TASK: fine-tuned from pt vs trained from scratch ($(wc -l < "$W/train.jsonl") examples)" \
  --run "from pt (lr ${pt_best#pt-lr})=$OUT/$pt_best/metrics.jsonl" \
  --run "from scratch (lr ${scratch_best#scratch-lr})=$OUT/$scratch_best/metrics.jsonl"
echo "transfer: done: $OUT/transfer.md, $OUT/transfer.svg"
