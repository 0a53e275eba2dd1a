#!/usr/bin/env bash
# Fuzzes the file parsers with libFuzzer (clang), under AddressSanitizer and UBSan:
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
# Targets: fuzz/fuzz_{idx,safetensors,jsonl}.cpp. Builds into build-fuzz/, seeds each corpus with
# valid files, runs each target for the given time, and prints the executions and any finding.
# Crashing inputs are written to build-fuzz/<target>.findings/crash-*; keep each one as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-60}"
if ! command -v clang++ >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y clang >/dev/null
fi
OUT=build-fuzz
mkdir -p "$OUT"
CXX="clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude"
TORCH="-I/usr/include/torch/csrc/api/include -ltorch -ltorch_cpu -lc10"
build() {  # target, sources..., extra flags
  local t="$1"; shift
  if [ ! -x "$OUT/$t" ] || [ -n "$(find fuzz src include -newer "$OUT/$t" -name '*.[ch]*' | head -1)" ]; then
    echo "building $t"
    $CXX "fuzz/$t.cpp" "$@" -o "$OUT/$t"
  fi
}
build fuzz_idx src/mnist/idx.cpp src/util/fs.cpp $TORCH -lz -lfmt
build fuzz_jsonl src/data/chat.cpp src/util/fs.cpp $TORCH -lfmt
build fuzz_safetensors src/model/safetensors.cpp src/util/fs.cpp $TORCH -lfmt

# seed corpora: valid files of each format
python3 - "$OUT" <<'PY'
import gzip, json, os, struct, sys
out = sys.argv[1]
def put(t, name, data):
    d = os.path.join(out, t + "_corpus"); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)
idx = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 3, 3) + bytes(range(18))
put("fuzz_idx", "images.idx", idx)
put("fuzz_idx", "labels.idx", bytes([0, 0, 0x08, 1]) + struct.pack(">I", 4) + bytes([1, 2, 3, 4]))
put("fuzz_idx", "images.idx.gz", gzip.compress(idx))
def st(tensors, meta=None):
    hdr, data = {}, b""
    for name, (dt, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta: hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode()
    return struct.pack("<Q", len(h)) + h + data
put("fuzz_safetensors", "two.safetensors", st({"a": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), "b": ("BF16", [3], b"\x80\x3f" * 3)}, {"format": "pt"}))
put("fuzz_safetensors", "ints.safetensors", st({"i": ("I64", [2], struct.pack("<2q", 7, -1)), "u": ("U8", [1, 1], b"\x05"), "h": ("F16", [1], b"\x00\x3c")}))
put("fuzz_jsonl", "chat.jsonl", b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "1, 2, 3"}]}\n'
    b'{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
put("fuzz_jsonl", "pc.jsonl", b'{"prompt": "p", "completion": "c"}\n\n')
PY

export ASAN_OPTIONS="${ASAN_OPTIONS:-alloc_dealloc_mismatch=0:detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for t in fuzz_idx fuzz_jsonl fuzz_safetensors; do
  mkdir -p "$OUT/$t.findings"
  log="$OUT/$t.log"
  if (cd "$OUT/$t.findings" && "../$t" -max_total_time="$SECS" -max_len=4096 -timeout=10 -rss_limit_mb=4096 "../${t}_corpus" >"../$t.log" 2>&1); then
    echo "$t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1), no finding"
  else
    echo "$t: FINDING, see $log and $OUT/$t.findings/crash-*"; status=1
  fi
done
exit $status
