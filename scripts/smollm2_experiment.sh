#!/usr/bin/env bash
# Subliminal learning on SmolLM2-135M-Instruct, the slow-tier experiment of issue 23: fetches and
# imports the model (scripts/smollm2.sh), pretrains the cross-init base with SmolLM2's tokenizer
# (configs/paper/smollm2-135m_cross_base.json), runs configs/paper/smollm2-135m_owl_numbers.json with
# that base as the cross-init student's init, and checks the run against
# configs/paper/smollm2-135m_owl_numbers.expect.json (written before the first run; registered by the run). Wall time and
# peak memory (summed PSS over the process tree) are written to OUT/peak_mem.json. Resumable.
# Usage: scripts/smollm2_experiment.sh [OUT]   (default runs/smollm2)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/smollm2}
B=${SUBLIMINAL:-build/subliminal}
scripts/smollm2.sh
mkdir -p "$OUT"
scripts/peak_mem.py --out "$OUT/peak_mem.json" -- bash -c "
  set -e
  $B run configs/paper/smollm2-135m_cross_base.json --out '$OUT/cross_base' --resume
  $B run configs/paper/smollm2-135m_owl_numbers.json --out '$OUT/owl_numbers' --resume --set 'students.cross_init_path=$OUT/cross_base/base'"
# the claims the run registered before its first stage (configs/paper/smollm2-135m_owl_numbers.expect.json,
# found beside the config): a failed claim, or one that was not pre-registered, exits 1
$B check "$OUT/owl_numbers" --require-registered
