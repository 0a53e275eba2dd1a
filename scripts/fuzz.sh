#!/usr/bin/env bash
# Fuzzes the file parsers with libFuzzer (clang), under AddressSanitizer and UBSan:
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
# Targets: fuzz/fuzz_{idx,safetensors,safetensors_index,jsonl,config,tokenizer_json,gguf}.cpp. Builds into
# build-fuzz/, seeds each corpus with valid files, runs each target for the given time, and prints the
# executions and any finding. The config target links the embedded resources of build/ (scripts/setup.sh).
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
TARGETS=${TARGETS:-fuzz_idx fuzz_jsonl fuzz_safetensors fuzz_safetensors_index fuzz_config fuzz_tokenizer_json fuzz_gguf}
build() {  # target, sources..., extra flags (only the targets asked for: TARGETS="fuzz_idx fuzz_jsonl" scripts/fuzz.sh)
  local t="$1"; shift
  case " $TARGETS " in *" $t "*) ;; *) return 0 ;; esac
  if [ ! -x "$OUT/$t" ] || [ -n "$(find fuzz src include -newer "$OUT/$t" -name '*.[ch]*' | head -1)" ]; then
    echo "building $t"
    $CXX "fuzz/$t.cpp" "$@" -o "$OUT/$t"
  fi
}
build fuzz_idx src/mnist/idx.cpp src/util/fs.cpp $TORCH -lz -lfmt
build fuzz_jsonl src/data/chat.cpp src/util/fs.cpp $TORCH -lfmt
build fuzz_safetensors src/model/safetensors.cpp src/util/fs.cpp $TORCH -lfmt
build fuzz_safetensors_index src/model/safetensors.cpp src/util/fs.cpp $TORCH -lfmt
[ -f build/embedded_resources.cpp ] || scripts/setup.sh
build fuzz_config src/config/*.cpp src/util/resources.cpp src/util/fs.cpp build/embedded_resources.cpp -lfmt
build fuzz_gguf src/model/gguf.cpp src/util/fs.cpp -I/usr/include/torch/csrc/api/include -lc10 -lfmt
build fuzz_tokenizer_json src/text/bpe.cpp src/text/tokenizer.cpp src/text/spm_loader.cpp src/util/fs.cpp $(pkg-config --cflags --libs libpcre2-8 libutf8proc) -ldl -lfmt

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
idx = {"metadata": {"total_size": 44}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                                                     "c": "model-00002-of-00002.safetensors"}}
put("fuzz_safetensors_index", "index.json", json.dumps(idx).encode())
for f in ["configs/default.json", "tests/configs/tiny.json", "tests/configs/tiny_trait.json", "configs/paper/mnist_aux_logits.json",
          "configs/paper/owl_cot.json"]:
    if os.path.exists(f): put("fuzz_config", os.path.basename(f), open(f, "rb").read())
put("fuzz_config", "sets.json", json.dumps({"name": "x", "experiment": "pretrain", "seed": 3, "base": {"model": {"preset": "tiny"},
    "train": {"steps": 2, "lr": 1e-3}}, "probe": {"enabled": True, "batch_size": 0}}).encode())
# a byte-level BPE tokenizer.json: the 256 byte symbols (GPT-2's mapping), a few merges, added tokens
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + n); n += 1
sym = [chr(c) for c in cs]
vocab = {s: i for i, s in enumerate(sym)}
merges = []
for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("\u0120", "w"), ("o", "r")]:
    vocab[a + b] = len(vocab); merges.append(a + " " + b)
tj = {"version": "1.0", "added_tokens": [{"id": len(vocab), "content": "<|im_end|>", "special": True},
                                         {"id": len(vocab) + 1, "content": "<|im_start|>", "special": True}],
      "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
      "post_processor": None, "decoder": {"type": "ByteLevel"},
      "model": {"type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": False}}
put("fuzz_tokenizer_json", "bytelevel.json", json.dumps(tj).encode())
tj["normalizer"] = {"type": "NFC"}
tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated"},
                                                             {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}
put("fuzz_tokenizer_json", "qwen_like.json", json.dumps(tj).encode())
# GGUF v3: metadata of several value types (a nested array too), F32, Q8_0, Q4_K and Q6_K tensors
def gstr(s): s = s.encode(); return struct.pack("<Q", len(s)) + s
def gkv(k, t, v): return gstr(k) + struct.pack("<I", t) + v
kv = [gkv("general.architecture", 8, gstr("llama")), gkv("llama.block_count", 4, struct.pack("<I", 1)),
      gkv("llama.rope.freq_base", 6, struct.pack("<f", 1e4)), gkv("tokenizer.ggml.add_bos_token", 7, b"\x01"),
      gkv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + gstr("a") + gstr("\u0120b")),
      gkv("x.nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 5, 2) + struct.pack("<ii", -1, 2))]
tensors = [("f", [4, 2], 0, struct.pack("<8f", *range(8))), ("q8", [32], 8, b"\x00\x3c" + bytes(range(32))),
           ("q4k", [256], 12, b"\x00\x3c\x00\x38" + bytes(range(12)) + bytes(range(128))),
           ("q6k", [256], 14, bytes(range(128)) + bytes(range(64)) + bytes(range(16)) + b"\x00\x3c")]
head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv)
off, blobs = 0, b""
for name, dims, t, data in tensors:
    head += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", t, off)
    pad = (len(data) + 31) // 32 * 32
    blobs += data + b"\0" * (pad - len(data)); off += pad
head += b"\0" * ((len(head) + 31) // 32 * 32 - len(head))
put("fuzz_gguf", "small.gguf", head + blobs)
PY

export ASAN_OPTIONS="${ASAN_OPTIONS:-alloc_dealloc_mismatch=0:detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for t in $TARGETS; do
  mkdir -p "$OUT/$t.findings"
  log="$OUT/$t.log"
  if (cd "$OUT/$t.findings" && "../$t" -max_total_time="$SECS" -max_len=$([ "$t" = fuzz_tokenizer_json ] && echo 16384 || echo 4096) -timeout=10 -rss_limit_mb=4096 "../${t}_corpus" >"../$t.log" 2>&1); then
    echo "$t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1), no finding"
  else
    echo "$t: FINDING, see $log and $OUT/$t.findings/crash-*"; status=1
  fi
done
exit $status
