#!/usr/bin/env bash
# The verification tier: subliminal against the real Python libraries. Makes .venv-verify/ (Python
# 3.11; torch 2.13.0 CPU from the wheel on local disk, never PyPI's CUDA build; transformers, peft,
# safetensors, gguf pinned below), fetches and imports SmolLM2-135M-Instruct (scripts/smollm2.sh),
# exports the tests' tiny checkpoints, compares chat-template renderings with transformers'
# (tests/templates/compare_templates.py), and runs tests/verify/verify.py: logits, GGUF weights and
# dequantisers, tokenizer and chat template, a LoRA adapter in peft, greedy generation. Safe to
# re-run. Report: .cache/verify/report.json. Usage: scripts/verify.sh [RUN_MODEL_DIR...]
# (model directories written by `subliminal run`, e.g. runs/default/base, checked too).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SUBLIMINAL_VERIFY_VENV:-$PWD/.venv-verify}
PINS=(transformers==5.24.0 peft==0.21.2 safetensors==0.8.0 gguf==0.19.0 numpy==2.4.6 tokenizers==0.23.3)
TORCH=torch==2.13.0
[ -x build/subliminal ] && [ -x build/subliminal_tests_numeric ] || scripts/setup.sh
want=$(printf '%s\n' "$TORCH" "${PINS[@]}")
if ! { [ -x "$VENV/bin/python" ] && [ -f "$VENV/.pins" ] && [ "$(cat "$VENV/.pins")" = "$want" ]; }; then
  py=$(command -v python3.11) || { echo "[verify] needs python3.11 (the torch wheel on local disk is for CPython 3.11)" >&2; exit 2; }
  tmpw=$(mktemp -d)
  "$py" -m pip download -q --no-deps --no-index -d "$tmpw" "$TORCH" >/dev/null 2>&1 ||
    { echo "[verify] error: $TORCH (CPU) is not on local disk for pip; PyPI's is a CUDA build of several GB" >&2; rm -rf "$tmpw"; exit 2; }
  echo "[verify] making $VENV: $TORCH (CPU, local disk) + ${PINS[*]}"
  rm -rf "$VENV.tmp"
  "$py" -m venv "$VENV.tmp"
  "$VENV.tmp/bin/python" -m pip install -q --disable-pip-version-check "$tmpw"/torch-*.whl
  # torch is already satisfied, so nothing below can pull another build of it
  "$VENV.tmp/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}" "$TORCH"
  rm -rf "$tmpw" "$VENV"
  mv "$VENV.tmp" "$VENV"
  echo "$want" > "$VENV/.pins"
fi
scripts/smollm2.sh
mkdir -p .cache/verify
rm -rf .cache/verify/tiny
SUBLIMINAL_EXPORT_CHECKPOINTS=$PWD/.cache/verify/tiny build/subliminal_tests_numeric --gtest_filter='HfArchNumeric.Families*:LoraNumeric*' >/dev/null
# chat templates: our rendering (llama.cpp's engine) against transformers' render_jinja_template on
# llama.cpp's collection of real templates x 6 conversations
"$VENV/bin/python" tests/templates/compare_templates.py --bin build/subliminal --reference transformers \
  --templates .cache/third_party/llama.cpp-jinja/models/templates --out .cache/verify/templates.json
runs=()
for d in "$@"; do runs+=(--run-model "$d"); done
exec "$VENV/bin/python" tests/verify/verify.py --bin build/subliminal --model .cache/models/smollm2-135m-instruct \
  --gguf .cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --tiny .cache/verify/tiny --work .cache/verify/work \
  --out .cache/verify/report.json "${runs[@]}"
