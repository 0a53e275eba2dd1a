#!/usr/bin/env bash
# Fetches llama.cpp's Jinja engine (common/jinja: lexer, parser, runtime; MIT) and the real chat
# templates llama.cpp collects (models/templates/*.jinja) from the one registry package that ships
# them: the source distribution of llama-cpp-python on PyPI (llama.cpp vendored). Extracts into
#   .cache/third_party/llama.cpp-jinja/   common/jinja/*, common/{json,unicode}.{h,cpp}, models/templates/, LICENSE
# The build compiles the engine from there (CMake SUBLIMINAL_JINJA_DIR); the template tests read the
# templates in place. The archive's sha256 is pinned. third_party/llama.cpp-jinja.patch is applied
# (where the engine is more lenient than jinja2: it says where). Safe to re-run: a finished
# extraction of the same archive and patch is kept.
# Usage: scripts/jinja_engine.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
OUT=.cache/third_party/llama.cpp-jinja
PATCH=third_party/llama.cpp-jinja.patch
STAMP="$OUT/.llama-cpp-python-$VERSION-$(sha256sum "$PATCH" | cut -c1-16)"
[ -f "$STAMP" ] && exit 0
py=$(command -v python3.11 || command -v python3) || { echo "[jinja] needs python3 with pip to download from PyPI" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[jinja] downloading llama-cpp-python==$VERSION (source distribution, no dependencies) from PyPI for llama.cpp's Jinja engine"
"$py" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$VERSION"
arc="$tmp/llama_cpp_python-$VERSION.tar.gz"
[ -f "$arc" ] || { echo "[jinja] error: pip did not write $arc" >&2; exit 1; }
got=$(sha256sum "$arc" | cut -d' ' -f1)
[ "$got" = "$SHA256" ] || { echo "[jinja] error: $arc has sha256 $got, expected $SHA256" >&2; exit 1; }
src="llama_cpp_python-$VERSION/vendor/llama.cpp"
tar xzf "$arc" -C "$tmp" "$src/common/jinja" "$src/common/json.h" "$src/common/json.cpp" "$src/common/unicode.h" \
  "$src/common/unicode.cpp" "$src/models/templates" "$src/LICENSE"
rm -rf "$OUT.tmp" "$OUT"
mkdir -p "$(dirname "$OUT")"
mv "$tmp/$src" "$OUT.tmp"
patch -s -d "$OUT.tmp" -p1 < "$PATCH"
touch "$OUT.tmp/$(basename "$STAMP")"
mv "$OUT.tmp" "$OUT"
echo "[jinja] $OUT: $(ls "$OUT"/common/jinja/*.cpp | wc -l) engine sources, $(ls "$OUT"/models/templates/*.jinja | wc -l) templates"
