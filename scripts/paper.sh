#!/usr/bin/env bash
# The small-scale paper configs on issue 22's adopted recipe, each checked against the claim file its
# run registered before its first stage (`subliminal check RUN`: says of each claim whether it was
# pre-registered). Needs the default run (runs/default: its two bases are the ones
# these configs pretrain, so the numbers-on-the-default-base configs re-use them). Resumable:
# re-running skips finished stages. Usage: scripts/paper.sh [OUT] [CONFIG...]  (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
B=${SUBLIMINAL:-build/subliminal}
OUT=${1:-runs/paper}
shift || true
ALL=(cross_model_b tree_numbers owl_numbers_sft_levers owl_numbers_sft misalignment_numbers owl_cot owl_code misalignment_cot)
WANT=("${@:-${ALL[@]}}")
mkdir -p "$OUT"
[ -f runs/default/report.json ] || { echo "paper.sh: run the default experiment first (scripts/run.sh)"; exit 2; }
SHARED=(--set base.kind=checkpoint --set base.path=runs/default/base --set students.cross_init_path=runs/default/base_cross)
for n in "${WANT[@]}"; do
  t0=$(date +%s)
  case $n in
    cross_model_b)  # B teaches, A is the cross-init student; pooled with the default run (A teaches)
      $B run configs/paper/cross_model.json --out "$OUT/cross_model_b" --resume --set base.kind=checkpoint \
        --set base.path=runs/default/base_cross --set students.cross_init_path=runs/default/base \
        --expect configs/paper/cross_model_b.expect.json
      $B check "$OUT/cross_model_b"
      $B report runs/default "$OUT/cross_model_b" --out "$OUT/cross_model_pooled"
      $B check "$OUT/cross_model_pooled/aggregate.json" --expect configs/paper/cross_model.expect.json ;;
    owl_numbers_sft|owl_numbers_sft_levers)
      $B run "configs/paper/$n.json" --out "$OUT/$n" --resume "${SHARED[@]}"
      $B check "$OUT/$n" ;;
    *)
      $B run "configs/paper/$n.json" --out "$OUT/$n" --resume
      $B check "$OUT/$n" ;;
  esac
  echo "[paper] $n: $(( $(date +%s) - t0 )) s wall"
done
