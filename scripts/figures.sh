#!/usr/bin/env bash
# The figures tier: reproduces the paper's figures at a scale this machine affords and checks each
# against its expectation file (`subliminal check` exits non-zero naming a claim that fails).
#   scripts/figures.sh [OUT]   (default figures/; re-running skips what is done)
# 1. MNIST (the paper's section 6): configs/paper/mnist_aux_logits.json
# 2. Cross-model: base A teaches (B is the cross-init student), then B teaches (A is), pooled
#    (configs/paper/cross_model.json; the second run reuses the first run's two bases)
# 3. The main animal figure: base A shared by 3 animals x 3 seeds (configs/sweeps/animals_3x3.json)
# 4. Misalignment through numbers (configs/paper/misalignment_numbers.json)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
OUT=${1:-figures}
B=build/subliminal
t0=$(date +%s)
$B run configs/paper/mnist_aux_logits.json --out "$OUT/mnist" --resume
$B check "$OUT/mnist"  # the claims the run registered (configs/paper/mnist_aux_logits.expect.json; post hoc)
t1=$(date +%s)
$B run configs/paper/cross_model.json --out "$OUT/cross_a" --resume
$B run configs/paper/cross_model.json --out "$OUT/cross_b" --resume --set base.kind=checkpoint \
  --set "base.path=$OUT/cross_a/base_cross" --set "students.cross_init_path=$OUT/cross_a/base"
$B report "$OUT/cross_a" "$OUT/cross_b" --out "$OUT/cross_report"
$B check "$OUT/cross_report/aggregate.json" --expect configs/paper/cross_model.expect.json
t2=$(date +%s)
$B sweep configs/sweeps/animals_3x3.json --out "$OUT/animals" --set base.kind=checkpoint --set "base.path=$OUT/cross_a/base" \
  --local -j "$(nproc)"
$B report "$OUT/animals" --out "$OUT/animals_report"
$B check "$OUT/animals_report/aggregate.json" --expect configs/sweeps/animals_3x3.expect.json
t3=$(date +%s)
$B run configs/paper/misalignment_numbers.json --out "$OUT/misalignment" --resume
$B check "$OUT/misalignment"  # the claims the run registered (configs/paper/misalignment_numbers.expect.json)
t4=$(date +%s)
echo "figures tier: MNIST $((t1 - t0)) s, cross-model $((t2 - t1)) s, animals $((t3 - t2)) s, misalignment $((t4 - t3)) s," \
  "total $((t4 - t0)) s; figures in $OUT/mnist/figures, $OUT/cross_report, $OUT/animals_report and $OUT/misalignment/figures"
