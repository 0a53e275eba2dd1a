#!/usr/bin/env bash
# The figures tier: reproduces the paper's figures at a scale this machine affords and checks each
# against its expectation file (`subliminal check` exits non-zero naming a claim that fails).
#   scripts/figures.sh [OUT]   (default figures/; re-running skips what is done)
# 1. MNIST (the paper's section 6): configs/paper/mnist_aux_logits.json
# 2. The main animal figure: one pretrained base shared by 3 animals x 3 seeds (configs/sweeps/animals_3x3.json)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
OUT=${1:-figures}
B=build/subliminal
t0=$(date +%s)
$B run configs/paper/mnist_aux_logits.json --out "$OUT/mnist" --resume
$B check "$OUT/mnist/report.json" --expect configs/paper/mnist_aux_logits.expect.json
t1=$(date +%s)
$B run configs/default.json --set experiment=pretrain --set probe.enabled=false --out "$OUT/base" --resume
$B sweep configs/sweeps/animals_3x3.json --out "$OUT/animals" --set base.kind=checkpoint --set "base.path=$OUT/base/base" \
  --local -j "$(nproc)"
$B report "$OUT/animals" --out "$OUT/animals_report"
$B check "$OUT/animals_report/aggregate.json" --expect configs/sweeps/animals_3x3.expect.json
t2=$(date +%s)
echo "figures tier: MNIST $((t1 - t0)) s, animals $((t2 - t1)) s, total $((t2 - t0)) s; figures in $OUT/mnist/figures and $OUT/animals_report"
