#!/usr/bin/env bash
# The CUDA compile tier: builds subliminal against the CUDA LibTorch inside PyPI's torch wheel
# (torch==$TORCH_CUDA_VERSION, a CUDA 13 build), with nvcc and the CUDA headers from PyPI's nvidia-*
# wheels, into build-cuda/; then runs the unit tier with that binary on the CPU (no GPU needed:
# LibTorch's CUDA build runs on the CPU when it finds no driver). On a GPU machine the same build
# runs `device: "cuda"`. Idempotent; the first run downloads ~3.5 GB into .venv-cuda/.
#   scripts/cuda_build.sh            # venv + toolkit + configure + build + unit tier on the CPU
#   NO_TESTS=1 scripts/cuda_build.sh # build only (TARGETS=subliminal: the binary alone)
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_CUDA_VERSION=${TORCH_CUDA_VERSION:-2.13.0}
CUDA_SERIES=${CUDA_SERIES:-13.0}   # the CUDA of that wheel (its nvidia-cuda-runtime); nvcc must match it
VENV=${SUBLIMINAL_CUDA_VENV:-$PWD/.venv-cuda}
BUILD_DIR=${BUILD_DIR:-build-cuda}
TOOLKIT=$PWD/.cache/cuda-toolkit

# The Debian packages of the CPU build (compilers, spdlog, sentencepiece, ...), no LibTorch of Debian's.
TORCH_SOURCE=prefix NO_BUILD=1 scripts/setup.sh

have_cuda_torch() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "
import sys, torch
sys.exit(0 if torch.version.cuda and torch.__version__.split('+')[0] == '$TORCH_CUDA_VERSION' else 1)" 2>/dev/null
}
# --isolated: ignore this machine's pip config, whose find-links hold the CPU wheel of the same version
NVCC_PKGS=("nvidia-cuda-nvcc==$CUDA_SERIES.*" "nvidia-cuda-crt==$CUDA_SERIES.*" "nvidia-nvvm==$CUDA_SERIES.*" "nvidia-cuda-cccl==$CUDA_SERIES.*")
if ! have_cuda_torch; then
  py=$(command -v python3.11) || { echo "[cuda] error: needs python3.11 (the torch wheel is cp311)" >&2; exit 2; }
  echo "[cuda] making $VENV: torch==$TORCH_CUDA_VERSION (CUDA) and nvcc $CUDA_SERIES from PyPI"
  rm -rf "$VENV.tmp"
  "$py" -m venv "$VENV.tmp"
  "$VENV.tmp/bin/python" -m pip install --isolated -q --disable-pip-version-check "torch==$TORCH_CUDA_VERSION" "${NVCC_PKGS[@]}"
  rm -rf "$VENV"
  mv "$VENV.tmp" "$VENV"
fi
NV=$VENV/lib/python3.11/site-packages/nvidia
# nvcc (and the headers it shares a folder with) of the wheel's CUDA release, not a newer one
if ! "$NV/cu13/bin/nvcc" --version 2>/dev/null | grep -q "release $CUDA_SERIES,"; then
  echo "[cuda] installing nvcc $CUDA_SERIES into $VENV"
  "$VENV/bin/python" -m pip install --isolated -q --disable-pip-version-check "${NVCC_PKGS[@]}"
fi

# A CUDA toolkit folder in the layout CMake's FindCUDAToolkit expects, made of links into the wheels
# (they ship only versioned .so files), plus the driver's link-time stub, as the toolkit's own
# lib64/stubs/libcuda.so is: an empty library named libcuda.so.1 (LibTorch loads the real driver at
# run time; nothing we link needs it, so --as-needed drops it).
rm -rf "$TOOLKIT"
mkdir -p "$TOOLKIT/lib64/stubs"
for d in include nvvm; do ln -s "$NV/cu13/$d" "$TOOLKIT/$d"; done
mkdir -p "$TOOLKIT/bin"   # a folder of its own: nvcc finds lib64/ through bin/.. (a linked bin/ resolves into the wheel)
for f in "$NV"/cu13/bin/*; do ln -s "$f" "$TOOLKIT/bin/$(basename "$f")"; done
for f in "$NV"/cu13/lib/*.so.* "$NV"/cudnn/lib/*.so.* "$NV"/cusparselt/lib/*.so.* "$NV"/nccl/lib/*.so.* "$NV"/nvshmem/lib/*.so.*; do
  [ -e "$f" ] || continue
  b=$(basename "$f")
  ln -sf "$f" "$TOOLKIT/lib64/$b"
  ln -sf "$f" "$TOOLKIT/lib64/${b%%.so.*}.so"
done
for f in "$NV"/cu13/lib/*.a; do [ -e "$f" ] && ln -sf "$f" "$TOOLKIT/lib64/$(basename "$f")"; done  # cudart_static, cudadevrt
ln -s ../lib64 "$TOOLKIT/lib"   # nvcc.profile's -L$(TOP)/lib
echo 'int subliminal_cuda_stub;' | cc -shared -x c - -Wl,-soname,libcuda.so.1 -o "$TOOLKIT/lib64/stubs/libcuda.so"
"$TOOLKIT/bin/nvcc" --version | tail -1 | sed 's/^/[cuda] nvcc: /'

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSUBLIMINAL_TORCH=wheel \
  "-DSUBLIMINAL_TORCH_PYTHON=$VENV/bin/python" "-DCUDAToolkit_ROOT=$TOOLKIT" "-DCUDA_TOOLKIT_ROOT_DIR=$TOOLKIT" "-DCMAKE_CUDA_COMPILER=$TOOLKIT/bin/nvcc" \
  -DTORCH_CUDA_ARCH_LIST=9.0 ${CMAKE_ARGS:-} >/dev/null
[ -n "${CONFIGURE_ONLY:-}" ] && exit 0
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" ${TARGETS:+--target $TARGETS}
"$BUILD_DIR/subliminal" --version | sed 's/^/[cuda] /'
for lib in libtorch_cuda.so libc10_cuda.so; do
  ldd "$BUILD_DIR/subliminal" | grep -q "$lib" || { echo "[cuda] error: $BUILD_DIR/subliminal does not load $lib" >&2; exit 1; }
done
echo "[cuda] $BUILD_DIR/subliminal links LibTorch's CUDA libraries (libtorch_cuda.so, libc10_cuda.so)"
if [ -z "${NO_TESTS:-}" ]; then
  cd "$BUILD_DIR"
  ctest -L unit -j "${JOBS:-$(nproc)}" --output-on-failure --timeout 600
fi
