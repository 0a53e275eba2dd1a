#!/usr/bin/env bash
# Our bench built against different LibTorch versions, side by side in one run: each binary's
# `subliminal bench` in turn, the whole round ROUNDS times (A B A B: the machine's drift falls on
# both), then `bench --compare` of each round's results, every metric as a ratio to the first binary.
#   scripts/bench_libtorch.sh build/subliminal build-debian/subliminal [-- extra bench args]
# A binary may be a command with arguments in one word, e.g. "chroot /srv/deb13 /w/build/subliminal".
# Results: ${OUT:-runs/bench_libtorch}/round<r>_<i>.json. Never part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bins=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do bins+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#bins[@]} -ge 2 ] || { echo "usage: scripts/bench_libtorch.sh BIN_A BIN_B [BIN ...] [-- bench args]" >&2; exit 2; }
OUT=${OUT:-runs/bench_libtorch}
ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
for r in $(seq 1 "$ROUNDS"); do
  for i in "${!bins[@]}"; do
    echo "[bench_libtorch] round $r, binary $i: ${bins[$i]}"
    # shellcheck disable=SC2086  # a binary may be a command with arguments
    ${bins[$i]} bench --out "$PWD/$OUT/round${r}_$i.json" "$@"
  done
done
for r in $(seq 1 "$ROUNDS"); do
  files=()
  for i in "${!bins[@]}"; do files+=("$OUT/round${r}_$i.json"); done
  echo "[bench_libtorch] round $r"
  # shellcheck disable=SC2086
  ${bins[0]} bench --compare "${files[@]/#/$PWD/}"
done
