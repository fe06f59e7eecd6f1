#!/usr/bin/env bash
# Create the golden-data virtual environment at <repo>/.venv-golden (if missing)
# and install the pinned versions from tools/golden/requirements.txt.
# Only PyPI is needed; no model hub access is ever made by these tools.
#   tools/golden/setup_venv.sh            create if missing, then install/verify the pins
#   PYTHON=python3.11 tools/golden/setup_venv.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/.venv-golden"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r "$ROOT/tools/golden/requirements.txt"
# The official VQA normalisation (make_eval_golden.py loads only its vqa_eval.py); without its
# dependencies, whose pins conflict with the ones above.
"$VENV/bin/python" -m pip install --quiet --no-deps salesforce-lavis==1.0.2
"$VENV/bin/python" - <<'PY'
import torch, transformers, sentencepiece, safetensors, numpy, PIL
print("golden venv ready: torch", torch.__version__, "| transformers", transformers.__version__,
      "| sentencepiece", sentencepiece.__version__, "| numpy", numpy.__version__, "| pillow", PIL.__version__)
PY
