#!/usr/bin/env bash
# One command: install what is missing, build, and run the default experiment (the config built
# into the binary, same as configs/default.json). Extra arguments go to `subliminal run`,
# e.g. scripts/run.sh configs/default.json --set seed=2 --out runs/seed2
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
exec build/subliminal run "$@"
