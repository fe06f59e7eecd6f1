#!/usr/bin/env bash
# Regenerate every committed fixture (tokenizer, models, golden records) and
# write/verify tests/fixtures/golden/MANIFEST.sha256.
#   tools/golden/make_all.sh          regenerate and rewrite the manifest
#   tools/golden/make_all.sh --check  regenerate and fail if anything differs from the manifest
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv-golden/bin/python}
[ -x "$PY" ] || { echo "missing $PY: run tools/golden/setup_venv.sh first" >&2; exit 1; }
export PYTHONHASHSEED=0 PG_GOLDEN_THREADS=${PG_GOLDEN_THREADS:-1} OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
echo "== tokenizer"; "$PY" tools/golden/make_tokenizer.py
echo "== models";    "$PY" tools/golden/make_models.py
echo "== golden";    "$PY" tools/golden/make_golden.py
echo "== gradients"; "$PY" tools/golden/make_grad_golden.py
echo "== eval";      "$PY" tools/golden/make_eval_golden.py
echo "== siglip loss"; "$PY" tools/golden/make_siglip_loss_golden.py
echo "== siglip pretrain"; "$PY" tools/golden/make_siglip_pretrain_golden.py
manifest() {
  (cd tests/fixtures && find models golden grad_golden \( -type f -o -type l \) ! -name MANIFEST.sha256 | LC_ALL=C sort | while read -r f; do
     if [ -L "$f" ]; then echo "link:$(readlink "$f")  $f"; else sha256sum "$f"; fi
   done)
}
if [ "${1:-}" = "--check" ]; then
  if diff <(manifest) tests/fixtures/golden/MANIFEST.sha256; then echo "fixtures identical to MANIFEST.sha256"
  else echo "fixtures differ from MANIFEST.sha256" >&2; exit 1; fi
else
  manifest > tests/fixtures/golden/MANIFEST.sha256
  echo "wrote tests/fixtures/golden/MANIFEST.sha256 ($(wc -l < tests/fixtures/golden/MANIFEST.sha256) files)"
fi
