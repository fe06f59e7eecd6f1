#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the bundled world model (models/paligemma-world:
# our own small PaliGemma 2, trained by this project's code on its synthetic world, see
# docs/WORLD_MODEL.md) on examples/world.png: a caption, a question, a detection and a
# segmentation, the last two drawn into out/world_detect.png and out/world_segment.png.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
MODEL=models/paligemma-world
IMAGE=examples/world.png
mkdir -p out
build/paligemma info --model "$MODEL"
ask() {  # ask PROMPT [extra run flags]: prints the prompt and the model's answer
  local prompt="$1"
  shift
  printf '\n%s\n  -> ' "$prompt"
  build/paligemma run --model "$MODEL" --image "$IMAGE" --prompt "$prompt" --quiet "$@"
}
ask "caption en"
ask "answer en what color is the star?"
ask "detect star ; circle" --annotate out/world_detect.png
ask "segment orange star" --annotate out/world_segment.png --masks out/world_masks
ask "ocr"
printf '\nannotated images: out/world_detect.png, out/world_segment.png (masks in out/world_masks/)\n'
