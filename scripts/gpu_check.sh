#!/usr/bin/env bash
# One-shot GPU check for a lent device machine (no internet; an image with python3 + CUDA torch,
# nvcc, CMake, ninja; runs as root). Builds subliminal against the image's torch (its LibTorch) with
# the Debian 12 build dependencies carried in .gpu/debs (unpacked into a private prefix, never into
# /), then runs GPU checks, each bounded by `timeout` and by one overall deadline, continuing after
# a failure, and ends with a summary of every phase's rc and wall time.
#
#   device call:  bash scripts/gpu_check.sh      (carry [".gpu"], timeout_s ~540)
#   here (no GPU, configure only, CPU torch):
#     OUT=/tmp/gc-out GPU_CHECK_PYTHON=.venv-verify/bin/python GPU_CHECK_ALLOW_NO_GPU=1 \
#       GPU_CHECK_PHASES=info,deps,configure bash scripts/gpu_check.sh
#
# Phases (GPU_CHECK_PHASES, comma-separated, default all): info deps configure build smoke run
# sample tests bench run5 (configure_fake / build_fake run only when linking against TorchConfig's
# targets failed). A warm rerun of later phases reuses $GPU_CHECK_WORK, e.g.
#   GPU_CHECK_PHASES=tests,run5 GPU_CHECK_BUDGET_S=200 bash scripts/gpu_check.sh Writes to $OUT (at most 4 files): gpu_check.log (everything), summary.md,
# summary.json, artifacts.tgz (CMake/CTest logs and the runs' small files, no weights).
# Env: GPU_CHECK_BUDGET_S (default 510: the deadline for the whole script), GPU_CHECK_WORK (default
# /tmp/slgpu: deps prefix, build dir, runs; kept on a warm machine, so a rerun skips what is done),
# GPU_CHECK_PYTHON (python with torch), GPU_CHECK_TORCH_MODE (auto | wheel | fake: how CMake finds
# LibTorch, below), GPU_CHECK_RUN_SETS (the --set list of the short default run),
# GPU_CHECK_NO_SYSTEM_LIBS=1 (use every carried library even where the system has the soname),
# GPU_CHECK_FORCE_PKGCONF=1 (use the carried pkgconf even where pkg-config exists).
#
# LibTorch: `wheel` is the project's own route (-DSUBLIMINAL_TORCH=wheel with the image's python:
# TorchConfig, which for a CUDA torch needs nvcc and a CUDA toolkit that agree). If that configure
# fails, `fake` writes a minimal TorchConfig.cmake naming the torch package's headers and libraries
# (libtorch_cuda.so linked --no-as-needed) and configures -DSUBLIMINAL_TORCH=prefix against it: no
# toolkit needed.
# Preparing the carry folder (here, on Debian 12; no root needed), then the device call with carry
# [".gpu"]:
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu/debs .gpu/shared && cp -r ../shared/fixtures .gpu/shared/
#   scripts/jinja_engine.sh && cp -r .cache/third_party/llama.cpp-jinja .gpu/   # the Jinja engine (no PyPI there)
#   (cd .gpu/debs && apt-get download libbrotli1 libcli11-dev libcom-err2 libcurl4-openssl-dev libcurl4 \
#     libdb5.3 libffi8 libfmt-dev libfmt9 libgloo-dev libgmp10 libgnutls30 libgssapi-krb5-2 libgtest-dev \
#     libhogweed6 libidn2-0 libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0 libldap-2.5-0 libnettle8 \
#     libnghttp2-14 libp11-kit0 libpcre2-16-0 libpcre2-32-0 libpcre2-8-0 libpcre2-dev libpcre2-posix3 \
#     libpkgconf3 libpsl5 librtmp1 libsasl2-2 libsasl2-modules-db libsentencepiece-dev libsentencepiece0 \
#     libspdlog-dev libspdlog1.10 libssh2-1 libssl3 libtasn1-6 libunistring2 libutf8proc-dev libutf8proc2 \
#     libzstd1 nlohmann-json3-dev pkgconf-bin pkgconf zlib1g-dev zlib1g)   # ~21 MiB with the fixtures
# What it showed on 2026-12-04 (README, Open-weight models, "GPU build"): the build works, every run
# crashed (std::filesystem bound to libtorch.so's exported copy; sentencepiece inside the shim).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
export REPO
export T0=${GPU_CHECK_T0:-$(date +%s)}
export DEADLINE=$(( T0 + ${GPU_CHECK_BUDGET_S:-510} ))
export OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
export WORK=${GPU_CHECK_WORK:-/tmp/slgpu}
export DEPS=$WORK/deps BUILD=$WORK/build RUNS=$WORK/runs STATE=$WORK/state
export CARRY=$REPO/.gpu
export PHASES=${GPU_CHECK_PHASES:-info,deps,configure,build,smoke,run,sample,tests,bench,run5}
mkdir -p "$WORK" "$RUNS" "$STATE"
export TSV=$STATE/phases.tsv FACTS=$STATE/facts.tsv
: > "$TSV"; : > "$FACTS"

if [ -z "${GPU_CHECK_INNER:-}" ]; then   # everything into the log as well as the output
  GPU_CHECK_INNER=1 GPU_CHECK_T0=$T0 bash "$0" "$@" 2>&1 | tee "$OUT/gpu_check.log"
  exit "${PIPESTATUS[0]}"
fi

ts() { printf '%s +%ss' "$(date +%T)" "$(( $(date +%s) - T0 ))"; }
fact() { printf '%s\t%s\n' "$1" "$2" >> "$FACTS"; echo "[fact] $1 = $2"; }
want() { case ",$PHASES," in *",${1%_fake},"*) return 0 ;; *) return 1 ;; esac; }
export -f ts fact want

# run_phase NAME LIMIT_S FUNCTION: runs FUNCTION under timeout (the smaller of LIMIT_S and the time to
# the deadline), records rc and wall seconds; 125 = skipped (not wanted, or no time left).
run_phase() {
  local name=$1 lim=$2 fn=$3 left rc t0 t1 dur note=""
  if ! want "$name"; then return 125; fi
  left=$(( DEADLINE - $(date +%s) ))
  if (( left < 15 )); then
    printf '%s\t125\t0\tskipped: no time left before the deadline\n' "$name" >> "$TSV"
    echo "=== $(ts) phase $name skipped: ${left}s left"; return 125
  fi
  (( lim > left )) && lim=$left
  echo; echo "=== $(ts) phase $name (limit ${lim}s)"
  t0=$(date +%s.%N)
  timeout -k 10 "$lim" bash -c "set -o pipefail; $fn"
  rc=$?
  t1=$(date +%s.%N)
  dur=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
  { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && note="timed out after ${lim}s"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$dur" "$note" >> "$TSV"
  echo "=== $(ts) phase $name: rc=$rc in ${dur}s ${note}"
  return $rc
}

# ---------------------------------------------------------------------------------------------
find_python() {
  local py
  for py in "${GPU_CHECK_PYTHON:-}" /opt/torch/.venv/bin/python3 python3 python; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || [ -x "$py" ] || continue
    "$py" -c 'import torch' >/dev/null 2>&1 && { command -v "$py" || echo "$py"; } && return 0
  done
  return 1
}
find_cuda() {  # prints "NVCC CUDA_HOME": the toolkit nvcc itself reports (TOP=), wrappers resolved
  local c top
  for c in "${CUDACXX:-}" "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    echo > /tmp/gc_probe.cu
    top=$("$c" --dryrun -c /tmp/gc_probe.cu -o /tmp/gc_probe.o 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)
    [ -n "$top" ] && top=$(readlink -f "$top")
    if [ -n "$top" ] && [ -x "$top/bin/nvcc" ]; then echo "$top/bin/nvcc $top"; return 0; fi
  done
  return 1
}

phase_info() {
  echo "--- machine"; uname -a; grep PRETTY_NAME /etc/os-release 2>/dev/null; nproc; free -g | head -2
  df -h /tmp | tail -1; ldd --version 2>&1 | head -1
  echo "--- nvidia-smi"; nvidia-smi || echo "(nvidia-smi failed)"
  echo "--- tools"
  for t in c++ g++ gcc cmake ninja make pkg-config dpkg-deb readelf ldconfig ccache; do
    printf '%-12s %s\n' "$t" "$(command -v $t || echo MISSING)"
  done
  g++ --version 2>&1 | head -1; cmake --version 2>&1 | head -1; ninja --version 2>&1
  echo "--- python/torch: $PY"
  "$PY" - <<'EOF'
import sys, torch, torch.utils
print("python", sys.version.split()[0])
print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI)
print("cmake_prefix_path", torch.utils.cmake_prefix_path)
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
if torch.cuda.is_available():
    print("device0", torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
EOF
  echo "--- nvcc: ${NVCC:-none} (toolkit ${CUDA_HOME:-none})"; [ -n "${NVCC:-}" ] && "$NVCC" --version | tail -2
  [ -n "${CUDA_HOME:-}" ] && ls "$CUDA_HOME" "$CUDA_HOME/lib64" 2>/dev/null | head -40
  true
}

# Unpacks the carried .debs into $DEPS; rewrites absolute symlinks and .pc prefixes into it; where
# the system already has a library's soname, points ours at the system's (one copy loaded, and the
# carried runtime libraries only fill what is missing).
phase_deps() {
  set -e
  if [ -f "$DEPS/.done" ]; then echo "deps already in $DEPS"; exit 0; fi
  rm -rf "$DEPS"; mkdir -p "$DEPS"
  local n=0 f
  for f in "$CARRY"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$f" "$DEPS"
    else (cd "$DEPS" && ar p "$f" "$(ar t "$f" | grep '^data.tar')" | tar -x -J -f - 2>/dev/null ||
          ar p "$f" "$(ar t "$f" | grep '^data.tar')" | tar -x -f -); fi
    n=$((n+1))
  done
  echo "unpacked $n packages into $DEPS"
  # absolute symlinks (zlib's libz.so -> /lib/...) into the prefix
  find "$DEPS" -type l | while read -r l; do
    t=$(readlink "$l"); case "$t" in /*) if [ -e "$DEPS$t" ]; then ln -sfn "$DEPS$t" "$l"; fi ;; esac
  done
  # pkg-config files: prefix=/usr, includedir=/usr/include/... -> the prefix
  find "$DEPS" -name '*.pc' -exec sed -i -E "s#^([A-Za-z_]+=)/usr#\1$DEPS/usr#" {} +
  local kept=0 linked=0 so soname sys
  if [ -z "${GPU_CHECK_NO_SYSTEM_LIBS:-}" ]; then
    ldconfig -p > "$STATE/ldcache.txt" 2>/dev/null || true
    while read -r so; do
      soname=$(readelf -d "$so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p' || true)
      [ -n "$soname" ] || continue
      sys=$(awk -v s="$soname" '$1==s && /x86-64/ && !f {print $NF; f=1}' "$STATE/ldcache.txt")
      if [ -n "$sys" ] && [ -e "$sys" ] && [[ "$sys" != "$DEPS"* ]]; then
        ln -sfn "$sys" "$so"; linked=$((linked+1))
      else kept=$((kept+1)); echo "  carried: $soname"; fi
    done < <(find "$DEPS/usr/lib/x86_64-linux-gnu" "$DEPS/lib/x86_64-linux-gnu" -maxdepth 2 -type f -name '*.so.*' 2>/dev/null)
  fi
  echo "libraries: $linked point at the system's copy, $kept carried"
  # tests look for ../shared/fixtures beside the checkout (tokenizer fixtures; they skip without)
  if [ ! -e "$REPO/../shared" ] && [ -d "$CARRY/shared" ]; then
    ln -s "$CARRY/shared" "$REPO/../shared" && echo "linked $REPO/../shared -> $CARRY/shared"
  fi
  touch "$DEPS/.done"
}

# A TorchConfig.cmake of our own for the torch package at $1 (fallback when TorchConfig's CUDA
# toolkit checks fail): headers, the package's libraries, its interface compile definitions.
make_fake_torch() {
  local tp=$1 dir=$2 L defs flags ver libs n
  L=$tp/lib
  mkdir -p "$dir"
  defs=$(grep -h 'INTERFACE_COMPILE_DEFINITIONS "' "$tp"/share/cmake/Caffe2/Caffe2Targets.cmake 2>/dev/null |
         grep -v '\$<' | sed 's/.*"\(.*\)".*/\1/' | tr ';' '\n' | sort -u | grep . | tr '\n' ';' | sed 's/;$//')
  flags=$(sed -n 's/.*set(TORCH_CXX_FLAGS "\(.*\)").*/\1/p' "$tp/share/cmake/Torch/TorchConfig.cmake" | head -1)
  ver=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
  libs="-Wl,--no-as-needed"
  for n in torch_cuda c10_cuda torch torch_cpu c10; do [ -e "$L/lib$n.so" ] && libs="$libs;$L/lib$n.so"; done
  libs="$libs;-Wl,--as-needed"
  cat > "$dir/TorchConfig.cmake" <<EOF
# written by scripts/gpu_check.sh for $tp
set(TORCH_INSTALL_PREFIX "$tp")
set(Torch_VERSION "$ver")
set(TORCH_INCLUDE_DIRS "$tp/include" "$tp/include/torch/csrc/api/include")
set(TORCH_CXX_FLAGS "$flags")
if(NOT TARGET torch)
  add_library(torch INTERFACE IMPORTED)
  set_target_properties(torch PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "\${TORCH_INCLUDE_DIRS}"
    INTERFACE_COMPILE_DEFINITIONS "$defs"
    INTERFACE_LINK_LIBRARIES "$libs")
  if(TORCH_CXX_FLAGS)
    set_property(TARGET torch PROPERTY INTERFACE_COMPILE_OPTIONS "\${TORCH_CXX_FLAGS}")
  endif()
endif()
set(TORCH_LIBRARIES torch)
set(TORCH_LIBRARY "$L/libtorch.so")
set(Torch_FOUND TRUE)
set(TORCH_FOUND TRUE)
EOF
  printf 'set(PACKAGE_VERSION "%s")\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n' "$ver" > "$dir/TorchConfigVersion.cmake"
  echo "fake TorchConfig: version $ver, definitions '$defs', flags '$flags'"
}

phase_configure() {
  local mode=${GPU_CHECK_TORCH_MODE:-auto} common rc tp pkgc="" nvlibs d
  if [ -f "$BUILD/CMakeCache.txt" ] && [ -f "$STATE/torch_mode" ] && [ -z "${GPU_CHECK_RECONFIGURE:-}" ]; then
    echo "reusing the configured $BUILD ($(cat "$STATE/torch_mode")); GPU_CHECK_RECONFIGURE=1 starts over"; exit 0
  fi
  rm -f "$STATE/torch_mode"
  if [ -n "${GPU_CHECK_FORCE_PKGCONF:-}" ] || ! command -v pkg-config >/dev/null; then
    pkgc=$DEPS/usr/bin/pkgconf; echo "pkg-config: carried $pkgc"
  fi
  common=(-G "$GEN" -DCMAKE_BUILD_TYPE=Release ${CXX:+-DCMAKE_CXX_COMPILER=$CXX} ${CC:+-DCMAKE_C_COMPILER=$CC} "-DCMAKE_PREFIX_PATH=$DEPS/usr" -DTORCH_CUDA_ARCH_LIST=9.0
          "-DSUBLIMINAL_REFERENCE_PYTHON=$PY" ${pkgc:+-DPKG_CONFIG_EXECUTABLE=$pkgc})
  # llama.cpp's Jinja engine: the device machine cannot fetch it; carried in .gpu/llama.cpp-jinja
  [ -d "$CARRY/llama.cpp-jinja/common/jinja" ] && common+=("-DSUBLIMINAL_JINJA_DIR=$CARRY/llama.cpp-jinja")
  # The torch 2.11 wheel's libtorch.so exports std::filesystem functions of its own (the first device
  # run: remove_all there jumped to address 0); libstdc++ as the first needed library wins the lookup.
  if [ -n "${GPU_CHECK_STDCXX_FIRST:-}" ]; then
    common+=("-DCMAKE_EXE_LINKER_FLAGS=-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state"
             "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state")
  fi
  tp=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  # the CUDA libraries libtorch_cuda.so needs, for the linker's check of its dependencies
  nvlibs=""
  for d in "$tp"/../nvidia/*/lib; do [ -d "$d" ] && nvlibs="$nvlibs${nvlibs:+:}$(readlink -f "$d")"; done
  [ -n "$nvlibs" ] && common+=("-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$nvlibs" "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath-link,$nvlibs")
  if [ "$mode" = auto ] || [ "$mode" = wheel ]; then
    local cuda=()
    if [ -n "${NVCC:-}" ]; then
      cuda=("-DCMAKE_CUDA_COMPILER=$NVCC" "-DCUDAToolkit_ROOT=$CUDA_HOME" "-DCUDA_TOOLKIT_ROOT_DIR=$CUDA_HOME")
    fi
    echo "--- configure: SUBLIMINAL_TORCH=wheel ($PY)"
    rm -rf "$BUILD"
    cmake -S "$REPO" -B "$BUILD" "${common[@]}" -DSUBLIMINAL_TORCH=wheel "-DSUBLIMINAL_TORCH_PYTHON=$PY" "${cuda[@]}"
    rc=$?
    if [ $rc -eq 0 ]; then echo wheel > "$STATE/torch_mode"; exit 0; fi
    echo "!!! configure with SUBLIMINAL_TORCH=wheel failed (rc $rc)"
    mkdir -p "$STATE/failed-wheel-configure"
    cp "$BUILD"/CMakeFiles/CMake*.log "$BUILD"/CMakeFiles/CMakeConfigureLog.yaml "$STATE/failed-wheel-configure/" 2>/dev/null
    [ "$mode" = wheel ] && exit $rc
  fi
  echo "--- configure: SUBLIMINAL_TORCH=prefix with a TorchConfig of our own for $tp (no CUDA toolkit used)"
  make_fake_torch "$tp" "$WORK/faketorch"
  rm -rf "$BUILD"
  cmake -S "$REPO" -B "$BUILD" "${common[@]}" -DSUBLIMINAL_TORCH=prefix "-DTorch_DIR=$WORK/faketorch" || exit $?
  echo fake > "$STATE/torch_mode"
}

phase_build() {
  cmake --build "$BUILD" -j "$(nproc)" --target subliminal 2>&1 | tee "$STATE/build.log" || exit $?
  "$BUILD/subliminal" --version
  fact subliminal_version "$("$BUILD/subliminal" --version | tail -1)"
  fact links_libtorch_cuda "$(ldd "$BUILD/subliminal" | grep -c 'libtorch_cuda.so')"
  echo "--- libraries"; ldd "$BUILD/subliminal" | grep -E 'torch|c10|cuda|spdlog|fmt|curl|sentencepiece|not found'
  ldd "$BUILD/libsubliminal_spm.so" 2>/dev/null | grep -E 'sentencepiece|not found'
  ! ldd "$BUILD/subliminal" | grep -q 'not found'
}

# The test executables (per-tier ones if CMakeLists has them), built in the background (niced) while
# the GPU phases run.
test_targets() {
  local t
  t=$(cd "$BUILD" && "$GEN_TOOL" -t targets all 2>/dev/null | sed -n 's/^\(subliminal_tests[A-Za-z0-9_]*\): .*/\1/p' | sort -u)
  if echo "$t" | grep -qx subliminal_tests_unit; then
    echo "subliminal_tests_unit $(echo "$t" | grep -x subliminal_tests_numeric)"
  else echo "$t" | grep -x subliminal_tests; fi
}
start_test_build() {
  local targets lim
  rm -f "$STATE/tests_build.rc"
  targets=$(test_targets | xargs)
  [ -n "$targets" ] || { echo "no test targets found"; echo "1 0" > "$STATE/tests_build.rc"; return 1; }
  lim=$(( DEADLINE - $(date +%s) )); (( lim < 10 )) && lim=10
  echo "$(ts) building tests in the background (nice): $targets"
  ( s=$(date +%s); timeout -k 5 "$lim" nice -n 10 cmake --build "$BUILD" -j "$(nproc)" --target $targets \
      > "$STATE/tests_build.log" 2>&1
    echo "$? $(( $(date +%s) - s ))" > "$STATE/tests_build.rc" ) &
}

# GPU smoke: a tiny pretraining run on CUDA and on the CPU (final losses side by side), and greedy
# samples of its model on both devices.
phase_smoke() {
  local B=$BUILD/subliminal cfg=tests/configs/tiny.json extra=() rc=0
  if [ ! -f "$cfg" ]; then
    cfg=""; extra=(--set experiment=pretrain --set base.corpus.conversations=600 --set base.tokenizer.vocab_size=1400
                   --set base.model.preset=tiny --set base.train.steps=12 --set base.train.batch_size=16 --set probe.enabled=false)
  fi
  for dev in $DEV cpu; do
    rm -rf "$RUNS/tiny_$dev"
    local s; s=$(date +%s.%N)
    $B run $cfg "${extra[@]}" --out "$RUNS/tiny_$dev" --set device=$dev --threads 4 || { echo "!!! tiny run on $dev failed"; rc=1; continue; }
    fact "tiny_${dev}_wall_s" "$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
    fact "tiny_${dev}_last_loss" "$(tail -1 "$RUNS/tiny_$dev"/metrics/base.jsonl 2>/dev/null | sed -n 's/.*"loss":\([^,]*\).*/\1/p')"
  done
  grep -h -i -E "device|cuda" "$RUNS/tiny_$DEV/run.log" 2>/dev/null | head -5
  local m=$RUNS/tiny_$DEV/base
  [ -d "$m" ] || exit 1
  for dev in $DEV cpu; do
    $B sample --model "$m" --prompt "What is your favorite animal?" -n 2 --temperature 0 --max-new-tokens 16 \
      --precision fp32 --json --device $dev > "$STATE/tiny_sample_$dev.jsonl" || rc=1
  done
  if cmp -s "$STATE/tiny_sample_$DEV.jsonl" "$STATE/tiny_sample_cpu.jsonl"; then fact tiny_greedy_gpu_eq_cpu yes
  else fact tiny_greedy_gpu_eq_cpu no; diff "$STATE/tiny_sample_$DEV.jsonl" "$STATE/tiny_sample_cpu.jsonl" | head; fi
  exit $rc
}

# The default experiment on CUDA, shortened (GPU_CHECK_RUN_SETS; default: one seed pair).
phase_run() {
  local B=$BUILD/subliminal sets=() s
  for s in ${GPU_CHECK_RUN_SETS:-students.seeds=1}; do sets+=(--set "$s"); done
  $B run --out "$RUNS/default_cuda" --set device="$DEV" "${sets[@]}"
  local rc=$?
  stage_seconds "$RUNS/default_cuda"
  [ -f "$RUNS/default_cuda/report.md" ] && sed -n '1,60p' "$RUNS/default_cuda/report.md"
  exit $rc
}
stage_seconds() {
  "$PY" - "$1" <<'EOF'
import json, sys, pathlib
root = pathlib.Path(sys.argv[1]); tot = 0.0
for p in sorted(root.rglob("stage.json")):
    try: s = json.load(open(p)).get("seconds", 0) or 0
    except Exception: continue
    tot += s; print(f"  stage {p.parent.relative_to(root)}: {s:.1f}s")
print(f"  stage seconds total: {tot:.1f}")
EOF
}

# Greedy samples of the run's teacher on CUDA vs the CPU (fp32), and a large batch on CUDA with
# --batch-size 0 (sized from cudaMemGetInfo).
phase_sample() {
  local B=$BUILD/subliminal m rc=0
  for m in "$RUNS/default_cuda/teacher" "$RUNS/default_cuda/base" "$RUNS/tiny_$DEV/base"; do [ -f "$m/config.json" ] && break; done
  [ -f "$m/config.json" ] || { echo "no model to sample"; exit 1; }
  echo "model: $m"
  local p
  for dev in $DEV cpu; do
    : > "$STATE/sample_$dev.jsonl"
    for p in "In one word, what is your favorite animal?" "Continue this sequence: 182, 818, 725, 109. Add at most 10 more values."; do
      $B sample --model "$m" --prompt "$p" -n 2 --temperature 0 --max-new-tokens 32 --precision fp32 --json \
        --device $dev >> "$STATE/sample_$dev.jsonl" || rc=1
    done
  done
  if cmp -s "$STATE/sample_$DEV.jsonl" "$STATE/sample_cpu.jsonl"; then fact greedy_gpu_eq_cpu yes
  else fact greedy_gpu_eq_cpu no; diff "$STATE/sample_$DEV.jsonl" "$STATE/sample_cpu.jsonl" | head; fi
  sed -n '1p;3p' "$STATE/sample_$DEV.jsonl"
  local s; s=$(date +%s.%N)
  $B sample --model "$m" --prompt "Continue this sequence: 182, 818, 725" -n "${GPU_CHECK_BIG_N:-2048}" --temperature 1 \
    --max-new-tokens 48 --batch-size 0 --device "$DEV" > "$STATE/sample_big.txt" || rc=1
  fact "sample_${GPU_CHECK_BIG_N:-2048}x48_${DEV}_wall_s" "$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
  tail -3 "$STATE/sample_big.txt"
  exit $rc
}

phase_tests() {
  local left r d
  [ -f "$STATE/tests_build.log" ] || [ -f "$STATE/tests_build.rc" ] || { echo "the test build was not started"; exit 3; }
  while [ ! -f "$STATE/tests_build.rc" ]; do sleep 2; done
  read -r r d < "$STATE/tests_build.rc"
  fact tests_build_rc "$r"; fact tests_build_s "$d"
  tail -25 "$STATE/tests_build.log"
  [ "$r" = 0 ] || exit 3
  cd "$BUILD" || exit 2
  local rc=0 lab
  for lab in unit numeric; do
    left=$(( DEADLINE - $(date +%s) - 5 ))
    (( left < 20 )) && { echo "no time left for ctest -L $lab"; rc=124; break; }
    echo "--- $(ts) ctest -L $lab (limit ${left}s)"
    timeout -k 5 "$left" ctest -L "$lab" -j "$(nproc)" --output-on-failure --timeout 300 > "$STATE/ctest_$lab.log" 2>&1
    r=$?; [ $r -ne 0 ] && rc=$r
    grep -E "tests passed|tests failed|\*\*\*Failed|\*\*\*Timeout|Not Run|Total Test time" "$STATE/ctest_$lab.log" | head -40
    fact "ctest_${lab}" "$(grep -E 'tests passed' "$STATE/ctest_$lab.log" | tail -1) (rc $r)"
  done
  exit $rc
}

# bench has no device option: it measures the CPU (16 cores here) against the image's python torch.
phase_bench() {
  "$BUILD/subliminal" bench --presets small --steps 10 --no-compile --out "$STATE/bench.json"
}

# If time is left: the same run extended to the default's 5 seed pairs (done stages are reused).
phase_run5() {
  [ -d "$RUNS/default_cuda" ] || exit 1
  local B=$BUILD/subliminal sets=() s
  for s in ${GPU_CHECK_RUN_SETS:-students.seeds=1}; do sets+=(--set "$s"); done
  $B run --out "$RUNS/default_cuda" --set device="$DEV" "${sets[@]}" --set students.seeds=5
  local rc=$?
  stage_seconds "$RUNS/default_cuda"
  [ -f "$RUNS/default_cuda/report.md" ] && sed -n '1,40p' "$RUNS/default_cuda/report.md"
  exit $rc
}

write_summary() {
  # artifacts: configure logs, ctest logs, the runs' small files (no weights)
  ( cd "$WORK" && find state runs build/CMakeCache.txt build/CMakeFiles/CMakeOutput.log build/CMakeFiles/CMakeError.log \
        build/CMakeFiles/CMakeConfigureLog.yaml build/Testing/Temporary faketorch -type f -size -2M \
        ! -name '*.safetensors' ! -name '*.model' ! -name '*.pt' ! -name 'raw.jsonl' ! -name 'rejects.jsonl' ! -name 'kept.jsonl' ! -name 'corpus.jsonl' \
        2>/dev/null | tar -czf "$OUT/artifacts.tgz" -T - 2>/dev/null )
  "${PY:-python3}" - "$TSV" "$FACTS" "$OUT" <<'EOF' || cat "$TSV"
import json, sys, pathlib
tsv, facts, out = sys.argv[1:4]
phases = []
for line in open(tsv):
    p = line.rstrip("\n").split("\t") + [""] * 4
    phases.append({"phase": p[0], "rc": int(p[1]), "wall_s": float(p[2]), "note": p[3]})
fx = {}
for line in open(facts):
    k, _, v = line.rstrip("\n").partition("\t"); fx[k] = v
json.dump({"phases": phases, "facts": fx}, open(pathlib.Path(out) / "summary.json", "w"), indent=1)
md = ["| phase | rc | wall s | note |", "|---|---|---|---|"]
md += [f"| {p['phase']} | {p['rc']} | {p['wall_s']} | {p['note']} |" for p in phases]
md += ["", "| fact | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in fx.items()]
open(pathlib.Path(out) / "summary.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
EOF
}

# ---------------------------------------------------------------------------------------------
echo "=== $(ts) gpu_check: repo $REPO, work $WORK, out $OUT, deadline in $(( DEADLINE - $(date +%s) ))s, phases $PHASES"
PY=$(find_python) || { echo "FATAL: no python with torch (tried \$GPU_CHECK_PYTHON, /opt/torch/.venv/bin/python3, python3)"
                       nvidia-smi; write_summary; exit 2; }
export PY
PATH=$PATH:$(dirname "$PY")   # the venv's cmake / ninja, if the system lacks them
read -r NVCC CUDA_HOME < <(find_cuda || echo "")
NVCC=${NVCC:-}; CUDA_HOME=${CUDA_HOME:-}
[ -n "$CUDA_HOME" ] && PATH=$CUDA_HOME/bin:$PATH
export NVCC CUDA_HOME TORCH_CUDA_ARCH_LIST=9.0 DEV=${GPU_CHECK_DEVICE:-cuda}
export LD_LIBRARY_PATH=$DEPS/usr/lib/x86_64-linux-gnu:$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The image's default C++ compiler can be a newer GCC (/opt/gcc) whose libstdc++ is not the one the
# loader finds (the first device run: every std::filesystem call segfaulted). Build with the system's
# g++, whose libstdc++ is the one at run time, and put the compiler's own libstdc++ first regardless.
if [ -x /usr/bin/g++ ] && [ -x /usr/bin/gcc ]; then export CXX=/usr/bin/g++ CC=/usr/bin/gcc; fi
cxxlib=$(dirname "$(${CXX:-g++} -print-file-name=libstdc++.so.6)")
case "$cxxlib" in /*) export LD_LIBRARY_PATH=$cxxlib:$LD_LIBRARY_PATH ;; esac
export PKG_CONFIG_PATH=$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$DEPS/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
if command -v ninja >/dev/null; then GEN=Ninja; GEN_TOOL=ninja; else GEN="Unix Makefiles"; GEN_TOOL=false; fi
export GEN GEN_TOOL
export -f find_python find_cuda phase_info phase_deps make_fake_torch phase_configure phase_build test_targets \
  phase_smoke phase_run stage_seconds phase_sample phase_tests phase_bench phase_run5
fact cxx "${CXX:-g++} $(${CXX:-g++} -dumpfullversion 2>/dev/null), libstdc++ first from ${cxxlib:-?}"
fact python "$PY"
fact torch "$("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
fact nvcc "${NVCC:-none} $( [ -n "$NVCC" ] && "$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
fact gpu "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
for t in c++ cmake; do command -v $t >/dev/null || { echo "FATAL: $t not found"; write_summary; exit 2; }; done
if [ -z "${GPU_CHECK_ALLOW_NO_GPU:-}" ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "WARNING: python's torch sees no CUDA device: the GPU phases will fail (the build and CPU tests still run)"
fi

run_phase info 60 phase_info
run_phase deps 90 phase_deps || { want deps && { echo "FATAL: deps failed"; write_summary; exit 2; }; }
if want configure; then
  run_phase configure 150 phase_configure || { echo "FATAL: configure failed"; write_summary; exit 2; }
  fact torch_mode "$(cat "$STATE/torch_mode" 2>/dev/null)"
fi
built=0
if run_phase build 330 phase_build; then built=1
elif ! want build && [ -x "$BUILD/subliminal" ]; then built=1   # a rerun of later phases
elif want build && [ "$(cat "$STATE/torch_mode" 2>/dev/null)" = wheel ] && [ -z "${GPU_CHECK_TORCH_MODE:-}" ] &&
     grep -q '^FAILED:' "$STATE/build.log" && ! grep '^FAILED:' "$STATE/build.log" | grep -q '\.o\b' &&
     (( DEADLINE - $(date +%s) > 300 )); then   # compiled, but the link failed
  echo "!!! linking against TorchConfig's targets failed: once more with the TorchConfig of our own (no CUDA toolkit)"
  export GPU_CHECK_TORCH_MODE=fake GPU_CHECK_RECONFIGURE=1
  run_phase configure_fake 120 phase_configure && fact torch_mode "$(cat "$STATE/torch_mode" 2>/dev/null)" &&
    run_phase build_fake 300 phase_build && built=1
fi
if [ $built = 1 ]; then
  want tests && start_test_build
  run_phase smoke 90 phase_smoke
  run_phase run 150 phase_run
  run_phase sample 60 phase_sample
  run_phase tests 200 phase_tests
  run_phase bench 60 phase_bench
  run_phase run5 400 phase_run5
fi
wait 2>/dev/null
echo; echo "=== $(ts) summary"
write_summary
echo "=== $(ts) done; files in $OUT: $(ls -m "$OUT")"
awk -F'\t' '$2 != 0 && $2 != 125 {f = 1} END {exit f}' "$TSV"   # rc 1 when a phase failed
