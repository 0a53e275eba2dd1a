#!/usr/bin/env bash
# One command: install what is missing, build, and run the test suite. The default tiers are
# unit, numeric and e2e (a few minutes with the build); `scripts/test.sh slow` runs the slow tier.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
LABELS=${1:-"unit|numeric|e2e"}
cd build
ctest -L "$LABELS" -j "${JOBS:-$(nproc)}" --output-on-failure --timeout 600
