#!/usr/bin/env bash
# The pre-registered confirmatory run of issue 43 on SmolLM2-135M-Instruct: owl, then elephant
# (configs/paper/smollm2-135m_confirm_{owl,elephant}.json, claims in the .expect.json beside each,
# registered by each run before its first stage). Fetches and imports the model (scripts/smollm2.sh),
# pretrains the cross-init base (configs/paper/smollm2-135m_cross_base.json, into
# runs/smollm2-135m_cross_base: the path both configs name), then runs each animal with --resume
# under scripts/peak_mem.py (OUT/<animal>.peak_mem.json: wall time, peak summed PSS) and checks its
# claims. Not a test tier: about 5-6 hours per animal on 2 CPU cores. Resumable: re-run it after an
# interruption. Usage: scripts/smollm2_confirm.sh [OUT]   (default runs/smollm2_confirm)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/smollm2_confirm}
B=${SUBLIMINAL:-build/subliminal}
scripts/smollm2.sh
mkdir -p "$OUT"
$B run configs/paper/smollm2-135m_cross_base.json --resume
status=0
for animal in owl elephant; do
  scripts/peak_mem.py --out "$OUT/$animal.peak_mem.json" -- $B run "configs/paper/smollm2-135m_confirm_$animal.json" --out "$OUT/$animal" --resume
  # the claims registered before the first stage: a failed claim, or one not pre-registered, exits 1
  $B check "$OUT/$animal" --require-registered | tee "$OUT/$animal.check.txt" || status=1
done
exit $status
