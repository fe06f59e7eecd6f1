#!/usr/bin/env bash
# Our side of the variant sweep in docs/PERFORMANCE.md: `paligemma bench --json` on every
# random-weight checkpoint tools/make_fullsize.py built (and `paligemma quantize` made), one
# JSON per variant in bench/results/<date>-ours/. Missing checkpoints are skipped.
#   bash bench/sweep_ours.sh [WORK=/tmp/pg-fullsize] [CLI=build/paligemma]
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/pg-fullsize}
CLI=${2:-build/paligemma}
out=bench/results/$(date +%F)-ours
mkdir -p "$out"
run() {
  local name=$1 dir=$2
  shift 2
  if [ ! -f "$dir/config.json" ]; then echo "skip $name: no $dir" >&2; return; fi
  echo "== $name" >&2
  "$CLI" bench --model "$dir" --image tests/fixtures/photos/chelsea.png --quiet --json "$@" >"$out/$name.json" \
    2>"$out/$name.err" || echo "FAILED $name (see $out/$name.err)" >&2
  [ -s "$out/$name.err" ] || rm -f "$out/$name.err"
}
run pg2-3b-224-bf16 "$WORK/pg2/model" --repeats 3 --new-tokens 16
run pg2-3b-224-int8 "$WORK/pg2-int8" --repeats 3 --new-tokens 16   # paligemma quantize --type int8
run pg2-3b-224-q4 "$WORK/pg2-q4" --repeats 3 --new-tokens 16       # paligemma quantize --type q4
run pg2-3b-224-int8-q4emb "$WORK/pg2-int8-q4emb" --repeats 3 --new-tokens 16  # --type int8 --embedding-type q4
run pg1-3b-224-bf16 "$WORK/pg1/model" --repeats 3 --new-tokens 16
run pg1-3b-448-bf16 "$WORK/pg1-448/model" --repeats 2 --new-tokens 16
run pg1-3b-896-bf16 "$WORK/pg1-896/model" --repeats 1 --warmup 1 --new-tokens 8
run pg2-3b-448-bf16 "$WORK/pg2-448/model" --repeats 2 --new-tokens 16
run pg2-3b-896-bf16 "$WORK/pg2-896/model" --repeats 1 --warmup 1 --new-tokens 8
run pg2-10b-224-int8 "$WORK/pg2-10b-int8/model" --repeats 1 --warmup 1 --new-tokens 8
run pg2-28b-224-q4 "$WORK/pg2-28b-q4/model" --repeats 1 --warmup 1 --new-tokens 8
echo "results in $out" >&2
