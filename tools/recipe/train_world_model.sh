#!/usr/bin/env bash
# The project's own PaliGemma, from nothing, with the project's own code: PaliGemma's recipe
# (Beyer et al. 2024, sec. 3.2) at toy scale on the synthetic world (`paligemma world`).
#
#   world data  ->  tokenizer  ->  fresh model (projector random, or at zero: PROJECTOR)
#   -> (a) SigLIP pretraining of the vision tower (sigmoid loss, learned t' and b)
#   -> (b) the mask VQ-VAE (codebook 128, 16 tokens per mask) -> segment examples
#   -> (c) stage 1: everything trains on the task mixture at config.json's 112 px, short text
#   -> stage 2: position embeddings resampled to STAGE2_SIZE px, longer text (STAGE2_MID_SIZE: first
#      STAGE2_MID_STEPS at that size in between, resampled twice)
#   -> (d) mix: a transfer on all tasks from fresh data   ->  eval on a held-out split
#
# Usage: tools/recipe/train_world_model.sh [OUT_DIR]         (default runs/world-model)
# Every stage prints its progress, records itself in OUT/done/ when finished and is skipped
# on a rerun, even when a knob changed (remove OUT/done/STAGE to redo it); a stage that runs
# again clears the records of the stages after it; an interrupted training stage continues
# from its last saved state (--resume).
# Knobs (environment): SCALE (multiplies every step and image count, e.g. 0.01 for a smoke run;
# SIGLIP_BATCH is capped at the caption pairs there are),
# THREADS (0 = all cores; default 1), BATCH, TRAIN_IMAGES, STAGE2_SIZE, PROJECTOR, STAGE1_MAX_TOKENS and the
# *_STEPS below; STAGE2_EVAL_EVERY (steps between stage 2's validations); GROUNDING_REPEAT=N puts
# each detect and segment example N times in the mixture of stages 1 and 2 (the grounding tasks
# weighted up; default 1). PROJECTOR=zero is big_vision's stage-1 init, made for a pretrained
# decoder; our decoder starts from nothing, and there a random projector learns about 2.5x faster
# (docs/WORLD_MODEL.md, "zero vs random projector"), so random is the default. VISION_INIT=mimetic
# starts the tower with sincos2d position embeddings and mimetic attention (`paligemma init`),
# SIGLIP_LR, SIGLIP_BATCH and SIGLIP_STEPS set stage (a); SIGLIP_SINGLE_IMAGES=N trains it on N (times
# SCALE) single-object scenes (seed 5000001), whose captions can only be told apart by shape when colour
# and size agree (0: the training split's captions); STAGE1_LR sets stage 1's rate. The defaults
# are version 2's (version 1: VISION_INIT=transformers SIGLIP_LR=1e-3 SIGLIP_BATCH=32
# SIGLIP_SINGLE_IMAGES=0 SIGLIP_STEPS=400 STAGE1_LR=7e-4 STAGE1_STEPS=1800 TRAIN_IMAGES=8000);
# docs/WORLD_MODEL.md ("what the tower knows", "version 2") has the measurements behind them. The eval stage also writes OUT/probe_*.json: linear
# probes (`paligemma probe`) of the tower after SigLIP, stage 1, stage 2 and mix, and
# OUT/vqa_by_type_{stage2,mix}.md: VQA accuracy by question type (tools/recipe/vqa_by_type.py).
# Timings and results of the run that made models/paligemma-world: docs/WORLD_MODEL.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PG="${PG:-$ROOT/build/paligemma}"
OUT="${1:-$ROOT/runs/world-model}"
SCALE="${SCALE:-1}"
THREADS="${THREADS:-1}"  # on the 2-core machine one thread beat two (SigLIP ~120 vs ~85 pairs/s alone); more cores: try 0
TRAIN_IMAGES="${TRAIN_IMAGES:-12000}"    # world images for pretraining and stages 1-2
MIX_IMAGES="${MIX_IMAGES:-2000}"        # fresh images (another seed) for the mix transfer
VAL_IMAGES="${VAL_IMAGES:-100}"
TEST_IMAGES="${TEST_IMAGES:-200}"
STAGE2_SIZE="${STAGE2_SIZE:-224}"
SIGLIP_STEPS="${SIGLIP_STEPS:-600}"
VAE_STEPS="${VAE_STEPS:-3000}"
STAGE1_STEPS="${STAGE1_STEPS:-3600}"
STAGE1_MAX_TOKENS="${STAGE1_MAX_TOKENS:-128}"  # 64 image tokens + prefix + suffix: 96 cut a fifth of the targets
STAGE2_STEPS="${STAGE2_STEPS:-150}"
STAGE2_MID_SIZE="${STAGE2_MID_SIZE:-}"      # e.g. 168: stage 2 resamples 112 -> 168 -> STAGE2_SIZE
STAGE2_MID_STEPS="${STAGE2_MID_STEPS:-200}"
STAGE2_EVAL_EVERY="${STAGE2_EVAL_EVERY:-50}"  # steps between stage 2's validations (each about 50 s at 224 px)
MIX_STEPS="${MIX_STEPS:-100}"
PROJECTOR="${PROJECTOR:-random}"
VISION_INIT="${VISION_INIT:-mimetic}"  # mimetic: sincos2d position embeddings + mimetic attention (see below)
SIGLIP_LR="${SIGLIP_LR:-3e-4}"
SIGLIP_SINGLE_IMAGES="${SIGLIP_SINGLE_IMAGES:-20000}"  # > 0: SigLIP on this many single-object caption scenes (seed 5000001)
STAGE1_LR="${STAGE1_LR:-3e-4}"
VOCAB="${VOCAB:-768}"
BATCH="${BATCH:-32}"
SIGLIP_BATCH="${SIGLIP_BATCH:-128}"  # pairs per SigLIP step: with more, more negatives share a colour, so shape must count
GROUNDING_REPEAT="${GROUNDING_REPEAT:-1}"  # stages 1-2 see each detect and segment example this many times an epoch

case "$SIGLIP_SINGLE_IMAGES" in ''|*[!0-9]*) echo "recipe: SIGLIP_SINGLE_IMAGES must be a count >= 0, got '$SIGLIP_SINGLE_IMAGES'" >&2; exit 1;; esac
[ -z "$STAGE2_MID_SIZE" ] || case "$STAGE2_MID_SIZE" in *[!0-9]*) echo "recipe: STAGE2_MID_SIZE must be a size in pixels or empty, got '$STAGE2_MID_SIZE'" >&2; exit 1;; esac
case "$GROUNDING_REPEAT" in ''|*[!0-9]*|0) echo "recipe: GROUNDING_REPEAT must be a count >= 1, got '$GROUNDING_REPEAT'" >&2; exit 1;; esac
case "$PROJECTOR" in zero|random) ;; *) echo "recipe: PROJECTOR must be zero or random, got '$PROJECTOR'" >&2; exit 1;; esac
case "$VISION_INIT" in transformers|mimetic) ;; *) echo "recipe: VISION_INIT must be transformers or mimetic, got '$VISION_INIT'" >&2; exit 1;; esac
[ -x "$PG" ] || { echo "recipe: $PG not built (cmake -S . -B build && cmake --build build)" >&2; exit 1; }
mkdir -p "$OUT/done"
steps() { awk -v s="$1" -v k="$SCALE" 'BEGIN { n = int(s * k + 0.5); print (n < 1 ? 1 : n) }'; }
images() { awk -v s="$1" -v k="$SCALE" 'BEGIN { n = int(s * k + 0.5); print (n < 8 ? 8 : n) }'; }
T0=$(date +%s)
STAGES=(world tokenizer init siglip vae segment-data stage1 stage2-mid stage2 mix eval)
stage() {  # stage NAME: true when it still has to run (and announces it)
  if [ -e "$OUT/done/$1" ]; then
    echo "recipe: [$1] done already ($(cat "$OUT/done/$1"))"
    return 1
  fi
  local later=0 s
  for s in "${STAGES[@]}"; do  # what came after this stage was made from its old output
    [ "$later" = 1 ] && rm -f "$OUT/done/$s"
    [ "$s" = "$1" ] && later=1
  done
  echo "recipe: [$1] starting at $(date -u +%H:%M:%S), $(($(date +%s) - T0)) s into this run"
  STAGE_T0=$(date +%s)
}
finish() { echo "$(($(date +%s) - STAGE_T0)) s" > "$OUT/done/$1"; echo "recipe: [$1] finished in $(cat "$OUT/done/$1")"; }
resume_flag() { [ -e "$1/state/state.json" ] && echo "--resume" || true; }

W="$OUT/world"
WORLD_TASKS="caption,answer,detect,ocr"
if stage world; then
  rm -rf "$W"
  "$PG" world --out "$W" --seed 1 --images "$(images "$TRAIN_IMAGES")" --size "$STAGE2_SIZE" --tasks "$WORLD_TASKS"
  "$PG" world --out "$W" --seed 1000001 --images "$(images "$VAL_IMAGES")" --size "$STAGE2_SIZE" --tasks "$WORLD_TASKS" --split-name val
  "$PG" world --out "$W" --seed 3000001 --images "$(images "$MIX_IMAGES")" --size "$STAGE2_SIZE" --tasks "$WORLD_TASKS" --split-name mix
  if [ "$SIGLIP_SINGLE_IMAGES" -gt 0 ]; then  # one object per scene: its caption names its shape
    "$PG" world --out "$W" --seed 5000001 --images "$(images "$SIGLIP_SINGLE_IMAGES")" --size "$STAGE2_SIZE" \
      --tasks caption --max-objects 1 --text-probability 0 --split-name siglip
    cp "$W/siglip.jsonl" "$W/captions.jsonl"
  else
    grep '"task":"caption"' "$W/train.jsonl" > "$W/captions.jsonl" || true
  fi
  grep '"task":"caption"' "$W/val.jsonl" > "$W/val_captions.jsonl" || true
  [ -s "$W/captions.jsonl" ] && [ -s "$W/val_captions.jsonl" ] || { echo "recipe: no caption records" >&2; exit 1; }
  finish world
fi

if stage tokenizer; then
  "$PG" tokenizer --data "$W/train.jsonl" --vocab "$VOCAB" --out "$OUT/tokenizer.model"
  finish tokenizer
fi

if stage init; then
  rm -rf "$OUT/init"
  "$PG" init --config "$ROOT/tools/recipe/config.json" --tokenizer "$OUT/tokenizer.model" --out "$OUT/init" \
    --fit-vocabulary $([ "$PROJECTOR" = zero ] && echo --zero-projector || true) --seed 1 \
    $([ "$VISION_INIT" = mimetic ] && echo --vision-posemb sincos2d --vision-attention mimetic || true)
  finish init
fi

# (a) The vision tower learns from (image, caption) pairs alone, with SigLIP's sigmoid loss.
if stage siglip; then
  siglip_batch="$SIGLIP_BATCH" pairs="$(wc -l < "$W/captions.jsonl")"
  if [ "$pairs" -lt "$siglip_batch" ]; then  # a small SCALE: every pair in each step
    echo "recipe: SIGLIP_BATCH $SIGLIP_BATCH is more than the $pairs caption pairs; using $pairs"
    siglip_batch="$pairs"
  fi
  "$PG" pretrain-vision --model "$OUT/init" --data "$W/captions.jsonl" --val "$W/val_captions.jsonl" \
    --out "$OUT/siglip" --steps "$(steps "$SIGLIP_STEPS")" --batch-size "$siglip_batch" --lr "$SIGLIP_LR" --warmup "$(steps 50)" \
    --save-every 50 --threads "$THREADS" $(resume_flag "$OUT/siglip")
  finish siglip
fi

# (b) The mask VQ-VAE on the world's instance masks, then the segment examples it encodes.
if stage vae; then
  "$PG" vae-train --out "$OUT/vae-oid.npz" --steps "$(steps "$VAE_STEPS")" --warmup "$(steps 100)" --threads "$THREADS" \
    --eval-every "$(steps 500)" --world-size "$STAGE2_SIZE" \
    $([ -e "$OUT/vae-oid.npz.state.npz" ] && echo --resume || true)
  finish vae
fi
if stage segment-data; then
  for split in train:1 val:1000001 mix:3000001 test:2000001; do
    name="${split%%:*}"; seed="${split##*:}"
    case "$name" in train) n=$TRAIN_IMAGES;; val) n=$VAL_IMAGES;; mix) n=$MIX_IMAGES;; test) n=$TEST_IMAGES;; esac
    "$PG" world --out "$W" --seed "$seed" --images "$(images "$n")" --size "$STAGE2_SIZE" --tasks segment \
      --vae "$OUT/vae-oid.npz" --split-name "${name}_segment"
  done
  "$PG" world --out "$W" --seed 2000001 --images "$(images "$TEST_IMAGES")" --size "$STAGE2_SIZE" \
    --tasks "$WORLD_TASKS" --split-name test
  {  # GROUNDING_REPEAT > 1: the grounding tasks weighted up in the stage mixture (its epochs shuffle)
    cat "$W/train.jsonl" "$W/train_segment.jsonl"
    for ((r = 1; r < GROUNDING_REPEAT; r++)); do
      grep -h -e '"task":"detect"' -e '"task":"segment"' "$W/train.jsonl" "$W/train_segment.jsonl"
    done
  } > "$W/stage.jsonl"
  cat "$W/val.jsonl" "$W/val_segment.jsonl" > "$W/stage_val.jsonl"
  cat "$W/mix.jsonl" "$W/mix_segment.jsonl" > "$W/mix_all.jsonl"
  cat "$W/test.jsonl" "$W/test_segment.jsonl" > "$W/test_all.jsonl"
  finish segment-data
fi

common=(--batch-size "$BATCH" --clip-norm 1 --threads "$THREADS" --save-every 50 --val "$W/stage_val.jsonl"
        --eval-metrics 80 --vae "$OUT/vae-oid.npz")
# (c) Stage 1: the whole model on the mixture at low resolution with short sequences.
if stage stage1; then
  "$PG" finetune --model "$OUT/siglip" --train "$W/stage.jsonl" --out "$OUT/stage1" "${common[@]}" \
    --lr "$STAGE1_LR" --warmup 0.05 --max-steps "$(steps "$STAGE1_STEPS")" --max-tokens "$STAGE1_MAX_TOKENS" \
    --eval-every "$(steps 300)" --export-dtype f32 $(resume_flag "$OUT/stage1")
  finish stage1
fi
# Stage 2: the same model at the higher resolution (position embeddings resampled), longer text.
# With STAGE2_MID_SIZE it first trains STAGE2_MID_STEPS at a size in between, so that each resampling
# changes the patches' scale less (112 -> 224 at once halves what one patch of an object covers).
# at_resolution NAME FROM SIZE STEPS DTYPE: FROM's position embeddings resampled to SIZE px, then
# STEPS steps of the mixture with longer text, into OUT/NAME.
at_resolution() {
  rm -rf "$OUT/$1-init"
  "$PG" resolution --model "$2" --image-size "$3" --out "$OUT/$1-init"
  "$PG" finetune --model "$OUT/$1-init" --train "$W/stage.jsonl" --out "$OUT/$1" "${common[@]}" \
    --lr 2e-4 --warmup 0.05 --max-steps "$(steps "$4")" --max-tokens 320 \
    --eval-every "$(steps "$STAGE2_EVAL_EVERY")" --export-dtype "$5" $(resume_flag "$OUT/$1")
}
if stage stage2-mid; then
  [ -z "$STAGE2_MID_SIZE" ] || at_resolution stage2-mid "$OUT/stage1/model" "$STAGE2_MID_SIZE" "$STAGE2_MID_STEPS" f32
  finish stage2-mid
fi
if stage stage2; then
  stage2_from="$OUT/stage1/model"
  [ -z "$STAGE2_MID_SIZE" ] || stage2_from="$OUT/stage2-mid/model"
  at_resolution stage2 "$stage2_from" "$STAGE2_SIZE" "$STAGE2_STEPS" bf16
  cp "$OUT/vae-oid.npz" "$OUT/stage2/model/"
  finish stage2
fi
# (d) Mix: the pretrained model transferred to all tasks on fresh data, at a lower rate.
if stage mix; then
  "$PG" finetune --model "$OUT/stage2/model" --train "$W/mix_all.jsonl" --out "$OUT/mix" "${common[@]}" \
    --lr 1e-4 --warmup 0.05 --max-steps "$(steps "$MIX_STEPS")" --max-tokens 320 \
    --eval-every "$(steps 100)" --export-dtype bf16 $(resume_flag "$OUT/mix")
  cp "$OUT/vae-oid.npz" "$OUT/mix/model/"
  finish mix
fi

if stage eval; then
  for m in stage2 mix; do
    "$PG" eval --model "$OUT/$m/model" --data "$W/test_all.jsonl" --vae "$OUT/vae-oid.npz" \
      --threads "$THREADS" --json "$OUT/eval_$m.json" --predictions "$OUT/predictions_$m.jsonl"
    python3 "$ROOT/tools/recipe/vqa_by_type.py" "$OUT/predictions_$m.jsonl" > "$OUT/vqa_by_type_$m.md"
  done
  # What the vision tower can tell apart after each stage (linear probes on single-object scenes).
  for m in siglip stage1/model stage2/model mix/model; do
    "$PG" probe --model "$OUT/$m" --train-images "$(images 1500)" --test-images "$(images 500)" --threads "$THREADS" \
      --json > "$OUT/probe_${m%%/*}.json"
  done
  finish eval
fi
echo "recipe: all stages done in $OUT ($(($(date +%s) - T0)) s in this run); models: $OUT/stage2/model (pt), $OUT/mix/model (mix)"
