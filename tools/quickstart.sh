#!/usr/bin/env bash
# Installs the dependencies, builds, and answers "caption en" about a photo with a bundled
# checkpoint. Until the project's own trained model exists, the bundled checkpoints are the
# test fixtures: real PaliGemma 2 architecture, RANDOM weights, so the answer is gibberish;
# point --model at a real checkpoint for real answers (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
build/paligemma info --model tests/fixtures/models/pg2_gqa_window
build/paligemma run --model tests/fixtures/models/pg2_gqa_window \
  --image tests/fixtures/photos/chelsea.png --prompt "caption en" --max-new-tokens 12 --json
