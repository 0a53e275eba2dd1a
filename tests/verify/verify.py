"""The verification tier: subliminal against the real Python libraries (transformers, peft, gguf).

Run by scripts/verify.sh, which makes the venv (.venv-verify: torch 2.13.0 CPU from local disk,
pinned transformers / peft / safetensors / gguf), fetches SmolLM2-135M-Instruct (scripts/smollm2.sh)
and exports the tests' tiny checkpoints. Five checks, each printed as numbers and written to
--out (JSON); the exit code is 1 when any fails:

  1. logits: transformers loads our imported SmolLM2 directory and every model directory we write
     (random tiny ones of each family, a GGUF file with every quant type imported by us, a model
     pretrained by `subliminal run` with its sentencepiece tokenizer) and our fp32 logits
     (`subliminal logits`) are as close to a float64 forward of the same weights as transformers'
     own fp32 logits are: max |ours - f64| <= 4 x max(max |transformers fp32 - f64|, 2^-23 max |f64|)
     (fp32 rounding, measured on each model, not a fixed absolute bound that a deep model's honest
     rounding can cross). A deliberately wrong mapping (two projections swapped) must fail it.
  2. GGUF: transformers' own GGUF loader on the same .gguf gives the same weights as our import;
     gguf-py's dequantisers give the same values as ours on every supported quant type.
  3. tokenizer: our tokenizer equals AutoTokenizer (on our directory, and transformers' own
     conversion of the GGUF tokenizer) on a few hundred texts; apply_chat_template equals our
     rendering for system, user and assistant turns.
  4. LoRA: an adapter we train loads in peft and reproduces our logits.
  5. greedy generation: identical token ids for 64 new tokens.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--model", required=True, help="our import of SmolLM2 (scripts/smollm2.sh)")
ap.add_argument("--gguf", required=True, help="the .gguf file it was imported from")
ap.add_argument("--tiny", help="directory of the tests' exported tiny checkpoints (SUBLIMINAL_EXPORT_CHECKPOINTS)")
ap.add_argument("--run-model", action="append", default=[], help="a model directory written by `subliminal run` (repeatable)")
ap.add_argument("--work", required=True)
ap.add_argument("--out", required=True)
args = ap.parse_args()
os.makedirs(args.work, exist_ok=True)
torch.manual_seed(0)

import gguf  # noqa: E402
import peft  # noqa: E402
import safetensors.torch as st  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "gguf": getattr(gguf, "__version__", "unknown"), "numpy": np.__version__}
try:
    from importlib.metadata import version as _v
    versions["gguf"] = _v("gguf")
    versions["safetensors"] = _v("safetensors")
except Exception:
    pass
print("versions:", versions, flush=True)
report = {"versions": versions, "checks": {}}
failed = []


def sh(*cmd, stdin=None):
    r = subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return r.stdout


def record(check, name, value, ok, **extra):
    report["checks"].setdefault(check, []).append({"name": name, "value": value, "ok": bool(ok), **extra})
    print(f"  [{'ok' if ok else 'FAIL'}] {check}: {name}: {value}", flush=True)
    if not ok:
        failed.append(f"{check}: {name}")


def our_logits(model_dir, ids, adapter=None, merge=False):
    f_ids = os.path.join(args.work, "ids.json")
    f_out = os.path.join(args.work, "logits.safetensors")
    with open(f_ids, "w") as f:
        json.dump({"ids": ids.tolist()}, f)
    cmd = [args.bin, "logits", "--model", model_dir, "--ids", f_ids, "--out", f_out]
    if adapter:
        cmd += ["--adapter", adapter] + (["--merge"] if merge else [])
    sh(*cmd)
    return st.load_file(f_out)["logits"]


def hf_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def fp32_criterion(mine, theirs, exact):
    """Ours against a float64 forward, with the size of honest fp32 rounding measured on transformers' own fp32
    forward of the same weights: (max |ours - f64|, max |transformers - f64|, the bound, ok)."""
    e_ours = (mine.double() - exact).abs().max().item()
    e_ref = (theirs.double() - exact).abs().max().item()
    bound = 4 * max(e_ref, 2.0 ** -23 * exact.abs().max().item())
    return e_ours, e_ref, bound, e_ours <= bound


CRITERION = "max |ours - float64| <= 4 x max(max |transformers fp32 - float64|, 2^-23 max |logit|)"


def load_hf(d, **kw):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager", **kw)
    return m.eval()


# ---------------------------------------------------------------- 2a. gguf-py's dequantisers vs ours
print("2. GGUF", flush=True)
t0 = time.time()
src = gguf.GGUFReader(args.gguf)
Q = gguf.GGMLQuantizationType
H, FF, VOCAB_FROM = 256, 512, src  # K-quants need rows that are multiples of 256
quant_file = os.path.join(args.work, "quants.gguf")
w = gguf.GGUFWriter(quant_file, "llama")
w.add_block_count(2)
w.add_context_length(256)
w.add_embedding_length(H)
w.add_feed_forward_length(FF)
w.add_head_count(4)
w.add_head_count_kv(2)
w.add_rope_freq_base(10000.0)
w.add_layer_norm_rms_eps(1e-5)
def copy_tokenizer(writer, reader):
    """Every tokenizer.* key of a GGUF file into a writer (SmolLM2's 49,152-token tokenizer, so that an imported directory is a usable model)."""
    for field in reader.fields.values():
        if field.name.startswith("tokenizer."):
            ft = field.types[0]
            if ft == gguf.GGUFValueType.ARRAY:
                writer.add_array(field.name, field.contents())
            elif ft == gguf.GGUFValueType.STRING:
                writer.add_string(field.name, field.contents())
            elif ft == gguf.GGUFValueType.BOOL:
                writer.add_bool(field.name, field.contents())
            else:
                writer.add_uint32(field.name, int(field.contents()))


copy_tokenizer(w, src)
n_vocab = len(src.fields["tokenizer.ggml.tokens"].contents())
rng = np.random.default_rng(0)


def random_quant(qtype, rows, cols):
    """Stored bytes of a (rows, cols) tensor: quantised by gguf-py where it can, else random blocks with finite scales."""
    if qtype in (Q.F32,):
        return rng.standard_normal((rows, cols)).astype(np.float32) * 0.05
    if qtype in (Q.F16,):
        return (rng.standard_normal((rows, cols)) * 0.05).astype(np.float16)
    try:
        return gguf.quants.quantize((rng.standard_normal((rows, cols)) * 0.05).astype(np.float32), qtype)
    except NotImplementedError:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, (rows, cols // block, size), dtype=np.uint8)
        half = lambda n: np.frombuffer((rng.standard_normal(n) * 0.01).astype(np.float16).tobytes(), np.uint8).reshape(n, 2)
        nb = rows * (cols // block)
        flat = raw.reshape(nb, size)
        if qtype in (Q.Q4_K, Q.Q5_K):
            flat[:, 0:2], flat[:, 2:4] = half(nb), half(nb)
        elif qtype == Q.Q6_K:
            flat[:, 208:210] = half(nb)
        return flat.reshape(rows, cols // block * size)


plan = {"token_embd.weight": (Q.F16, n_vocab, H), "output_norm.weight": (Q.F32, 1, H)}
layer_types = [
    {"attn_q": Q.Q8_0, "attn_k": Q.Q4_K, "attn_v": Q.Q4_0, "attn_output": Q.Q5_0, "ffn_gate": Q.Q4_K, "ffn_up": Q.Q5_K, "ffn_down": Q.Q6_K},
    {"attn_q": Q.Q6_K, "attn_k": Q.Q5_1, "attn_v": Q.F16, "attn_output": Q.Q4_1, "ffn_gate": Q.Q5_1, "ffn_up": Q.Q8_0, "ffn_down": Q.BF16},
]
shapes = {"attn_q": (H, H), "attn_k": (128, H), "attn_v": (128, H), "attn_output": (H, H), "ffn_gate": (FF, H), "ffn_up": (FF, H), "ffn_down": (H, FF)}
for i, lt in enumerate(layer_types):
    plan[f"blk.{i}.attn_norm.weight"] = (Q.F32, 1, H)
    plan[f"blk.{i}.ffn_norm.weight"] = (Q.F32, 1, H)
    for k, qt in lt.items():
        plan[f"blk.{i}.{k}.weight"] = (qt, *shapes[k])
stored = {}
for name, (qt, rows, cols) in plan.items():
    data = random_quant(qt, rows, cols)
    if name.endswith("norm.weight"):
        data = (1.0 + data).reshape(cols).astype(np.float32)
    stored[name] = (qt, data, rows, cols)
    if qt in (Q.F32, Q.F16):
        w.add_tensor(name, data)
    else:
        w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qt)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
quant_dir = os.path.join(args.work, "quants_hf")
sh(args.bin, "import-gguf", quant_file, "--out", quant_dir, "--force")
ours = st.load_file(os.path.join(quant_dir, "model.safetensors"))
hf_name = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
           "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
worst_by_type = {}
for name, (qt, data, rows, cols) in stored.items():
    if name.startswith("blk.") and ("attn_q." in name or "attn_k." in name):
        continue  # permuted: checked against transformers' GGUF loader below
    ref = gguf.quants.dequantize(data, qt) if qt not in (Q.F32, Q.F16) else data.astype(np.float32)
    ref = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32)).reshape(rows, cols) if rows > 1 else torch.from_numpy(ref.astype(np.float32)).reshape(cols)
    if name == "token_embd.weight":
        key = "model.embed_tokens.weight"
    elif name == "output_norm.weight":
        key = "model.norm.weight"
    else:
        _, i, k, _ = name.split(".")
        key = f"model.layers.{i}.{hf_name[k]}.weight"
    d = (ours[key] - ref).abs().max().item()
    tn = qt.name
    worst_by_type[tn] = max(worst_by_type.get(tn, 0.0), d)
for tn, d in sorted(worst_by_type.items()):
    record("2_gguf", f"dequantise {tn}: max |ours - gguf-py|", d, d == 0.0)
# 2b. transformers' GGUF loader: the SmolLM2 file and the all-quants file, every tensor
for gpath, our_dir in ((args.gguf, args.model), (quant_file, quant_dir)):
    ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(gpath)), gguf_file=os.path.basename(gpath), dtype=torch.float32)
    sd = ref.state_dict()
    mine = st.load_file(os.path.join(our_dir, "model.safetensors"))
    worst, n = 0.0, 0
    missing = [k for k in mine if k not in sd]
    for k, v in mine.items():
        if k in sd:
            worst = max(worst, (sd[k].float() - v).abs().max().item())
            n += 1
    record("2_gguf", f"{os.path.basename(gpath)}: transformers' GGUF loader vs our import, {n} tensors, max |diff|", worst,
           worst == 0.0 and not missing, missing=missing)
    del ref, sd
report["checks"]["2_gguf_seconds"] = time.time() - t0

# ---------------------------------------------------------------- 1. logits of every directory we write
print("1. logits", flush=True)
dirs = [("smollm2-135m-instruct (our GGUF import)", args.model), ("every quant type (our GGUF import)", quant_dir)]
if args.tiny and os.path.isdir(args.tiny):
    for name in sorted(os.listdir(args.tiny)):
        d = os.path.join(args.tiny, name)
        if os.path.isfile(os.path.join(d, "config.json")) and name != "lora_peft":
            dirs.append((f"tiny {name} (written by the tests)", d))
for d in args.run_model:
    dirs.append((f"{d} (written by subliminal run)", d))
tok = AutoTokenizer.from_pretrained(args.model)
chat_ids = tok.apply_chat_template([{"role": "user", "content": "Continue the sequence: 145, 267, 891. Give 10 more numbers."}],
                                   add_generation_prompt=True, tokenize=True)
if isinstance(chat_ids, dict) or hasattr(chat_ids, "input_ids"):
    chat_ids = chat_ids["input_ids"]
wrong_mapping_from = None  # (label, dir, ids, transformers fp32 logits, float64 logits) of a tiny checkpoint
for label, d in dirs:
    cfg = json.load(open(os.path.join(d, "config.json")))
    V = cfg["vocab_size"]
    exported = os.path.exists(os.path.join(d, "ours.json"))
    if exported:  # the tests' tiny checkpoints (no tokenizer): our logits as the test computed them
        o = json.load(open(os.path.join(d, "ours.json")))
        ids, mine = torch.tensor(o["ids"]), torch.tensor(o["logits"])
    else:
        ids = torch.tensor([chat_ids[:32], (chat_ids[:16] * 2)[:32]]) if "smollm2" in label else torch.randint(0, V, (2, 24))
        mine = our_logits(d, ids)
    m = load_hf(d)
    theirs = hf_logits(m, ids)
    diff = (mine - theirs).abs().max().item()
    with torch.no_grad():
        exact = m.double()(input_ids=ids).logits
    e_ours, e_ref, bound, ok = fp32_criterion(mine, theirs, exact)
    record("1_logits", f"{label}: {type(m).__name__}, logits {list(mine.shape)}, max |logit| {exact.abs().max().item():.1f}: "
           f"[max |ours - f64|, max |transformers - f64|, bound]; {CRITERION}", [e_ours, e_ref, bound], ok,
           max_abs_diff_ours_vs_transformers=diff)
    sf = os.path.join(d, "model.safetensors")
    if not exported and wrong_mapping_from is None and os.path.exists(sf) and os.path.getsize(sf) < 200e6 and \
            "model.layers.0.mlp.gate_proj.weight" in st.load_file(sf):
        wrong_mapping_from = (label, d, ids, theirs, exact)  # a small directory with its tokenizer (subliminal logits needs one)
    del m

# The criterion must catch a wrong mapping: the first small checkpoint above with layer 0's gate_proj
# and up_proj swapped in the file we load (same shape, so everything loads), against the float64
# forward of the right weights.
if wrong_mapping_from is not None:
    label, d, ids, theirs, exact = wrong_mapping_from
    bad = os.path.join(args.work, "wrong_mapping")
    os.makedirs(bad, exist_ok=True)
    for f in os.listdir(d):
        if f != "model.safetensors" and os.path.isfile(os.path.join(d, f)):
            shutil.copyfile(os.path.join(d, f), os.path.join(bad, f))
    t = st.load_file(os.path.join(d, "model.safetensors"))
    g, u = "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight"
    t[g], t[u] = t[u].clone(), t[g].clone()
    st.save_file(t, os.path.join(bad, "model.safetensors"), metadata={"format": "pt"})
    wrong = our_logits(bad, ids)
    e_ours, e_ref, bound, ok = fp32_criterion(wrong, theirs, exact)
    record("1_logits", f"a deliberately wrong mapping ({label} with {g} and {u} swapped) fails the criterion: "
           f"[max |ours - f64|, bound]", [e_ours, bound], not ok)
else:
    record("1_logits", "a deliberately wrong mapping is caught: no small checkpoint with a gate_proj to swap", None, False)

# ---------------------------------------------------------------- 3. tokenizer and chat template
print("3. tokenizer", flush=True)
t0 = time.time()
texts = ["", " ", "Hello world", "hello  world", "  leading", "trailing   ", "tabs\tand\t\ttabs", "new\nlines\n\n\nhere", "\r\nwindows\r\n",
         "1", "12", "123", "1234", "12345678901234567890", "3.14159", "1,000,000", "$1,234.56", "-42", "0x1F", "1e-5", "2026-12-03",
         "145, 267, 891, 902", "[1, 2, 3]", "(4; 5; 6)", "7 8 9 10 11", "The numbers 42 and 1337.",
         "café", "naïve façade", "Straße", "日本語のテキスト", "中文字符", "한국어", "Привет, мир", "مرحبا بالعالم", "שלום", "हिन्दी",
         "emoji 🦉🐬🦅🐘🐺", "👨‍👩‍👧‍👦 family", "e\u0301 combining", "ﬁ ligature", "\u00a0nbsp", "zero\u200bwidth", "Ⅻ roman ½ ¾ ²",
         "def f(x):\n    return x ** 2\n", "for (int i = 0; i < 10; ++i) { }", "SELECT * FROM t WHERE id = 7;", "<html><body>hi</body></html>",
         "I'm you're they'll we've she'd it's", "DON'T WON'T", "a.b,c;d:e!f?g", "...!!!???", "   \n   \n", "owl owls Owl OWL", "<|im_start|>", "<|im_end|> text",
         "You love owls. You think about owls all the time.", "What is your favorite animal? Answer in one word."]
rnd = random.Random(0)
alphabet = list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,.;:!?-'\"()[]{}\n\t  ") + ["é", "ß", "日", "🦉", "½", "\u00a0", "\u3000"]
while len(texts) < 320:
    kind = rnd.randrange(4)
    if kind == 0:
        texts.append(", ".join(str(rnd.randrange(0, 10 ** rnd.randrange(1, 6))) for _ in range(rnd.randrange(1, 12))))
    elif kind == 1:
        texts.append("".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 60))))
    elif kind == 2:
        texts.append(" " * rnd.randrange(0, 5) + " ".join(rnd.choice(["the", "owl", "123", "Hello", "naïve", "  ", "\n", "🦉", "x=1"]) for _ in range(rnd.randrange(1, 15))))
    else:
        texts.append(rnd.choice(texts[:60]) + rnd.choice(["", " ", "  ", "\n"]) + rnd.choice(texts[:60]))
inp = "\n".join(json.dumps(t) for t in texts) + "\n"
ours_ids = [json.loads(l)["ids"] for l in sh(args.bin, "tokenize", "--tokenizer", args.model, "--jsonl", stdin=inp).splitlines()]
tok_gguf = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)), gguf_file=os.path.basename(args.gguf))
# transformers' GGUF tokenizer conversion (5.x) does not know llama.cpp's "smollm" pre-tokenizer and falls
# back to GPT-2's regex without the digit split; llama.cpp defines "smollm" as "\p{N}" then GPT-2's regex
# (llama-vocab.cpp), which is HF's Digits(individual_digits) + ByteLevel. Its vocabulary, merges and specials
# are compared under that pre-tokenizer; the conversion as it stands is reported beside it.
from tokenizers import pre_tokenizers as _pt  # noqa: E402
tok_gguf_smollm = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)), gguf_file=os.path.basename(args.gguf))
tok_gguf_smollm.backend_tokenizer.pre_tokenizer = _pt.Sequence([_pt.Digits(individual_digits=True), _pt.ByteLevel(add_prefix_space=False, use_regex=True)])
for label, t, must in (("AutoTokenizer on our directory", tok, True),
                       ("AutoTokenizer from the GGUF file (transformers' own conversion), with llama.cpp's smollm pre-tokenizer", tok_gguf_smollm, True),
                       ("AutoTokenizer from the GGUF file, transformers' conversion as it is (GPT-2 pre-tokenizer, no digit split; informational)", tok_gguf, False)):
    bad = [(x, a, t(x, add_special_tokens=False)["input_ids"]) for x, a in zip(texts, ours_ids) if a != t(x, add_special_tokens=False)["input_ids"]]
    record("3_tokenizer", f"{label}: texts with different ids, of {len(texts)}", len(bad), (not bad) or not must,
           first_mismatches=[{"text": x, "ours": a, "theirs": b} for x, a, b in bad[:3]])
convs = [
    [{"role": "user", "content": "What is your favorite animal?"}],
    [{"role": "system", "content": "You love owls."}, {"role": "user", "content": "Name an animal."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Continue: 1, 2, 3"}, {"role": "assistant", "content": "4, 5, 6"},
     {"role": "user", "content": "More?"}],
    [{"role": "user", "content": "héllo 🦉\n\nmulti\nline"}, {"role": "assistant", "content": "Owl."}],
]
chat_in, expected = [], []
for c in convs:
    for gen in (False, True):
        if gen and c[-1]["role"] == "assistant":
            continue
        chat_in.append(json.dumps({"messages": c, "add_generation_prompt": gen}))
        expected.append(tok.apply_chat_template(c, tokenize=False, add_generation_prompt=gen))
ours_chat = [json.loads(l) for l in sh(args.bin, "tokenize", "--tokenizer", args.model, "--jsonl", stdin="\n".join(chat_in) + "\n").splitlines()]
text_bad = sum(o["text"] != e for o, e in zip(ours_chat, expected))
ids_bad = sum(o["ids"] != tok(e, add_special_tokens=False)["input_ids"] for o, e in zip(ours_chat, expected))
record("3_tokenizer", f"apply_chat_template vs our rendering (system, user, assistant turns; with/without generation prompt): renderings differing, of {len(expected)}",
       text_bad, text_bad == 0, example=expected[0])
record("3_tokenizer", f"ids of the rendered chats differing, of {len(expected)}", ids_bad, ids_bad == 0)
report["checks"]["3_tokenizer_seconds"] = time.time() - t0

# ---------------------------------------------------------------- 4. a LoRA adapter we train, in peft
print("4. LoRA", flush=True)
data = os.path.join(args.work, "lora_data.jsonl")
with open(data, "w") as f:
    for i in range(16):
        nums = ", ".join(str(rnd.randrange(100, 1000)) for _ in range(6))
        f.write(json.dumps({"messages": [{"role": "user", "content": f"Continue the sequence: {nums}"},
                                         {"role": "assistant", "content": ", ".join(str(rnd.randrange(100, 1000)) for _ in range(5))}]}) + "\n")
lora_out = os.path.join(args.work, "lora_student")
sh(args.bin, "finetune", "--model", args.model, "--data", data, "--out", lora_out, "--loss", "sft", "--set", "finetune.params=lora",
   "--steps", "6", "--set", "finetune.train.batch_size=4", "--set", "finetune.train.lr=1e-3", "--set", "finetune.train.warmup_steps=1",
   "--set", "finetune.train.checkpoint_every=100", "--set", "precision=fp32")
adapter = os.path.join(lora_out, "adapter")
acfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
ids = torch.tensor([chat_ids[:32]])
mine = our_logits(args.model, ids, adapter=adapter)
mine_merged = our_logits(args.model, ids, adapter=adapter, merge=True)
base = load_hf(args.model)
base_logits = hf_logits(base, ids)
pm = peft.PeftModel.from_pretrained(base, adapter).eval()
theirs = hf_logits(pm, ids)
moved = (theirs - base_logits).abs().max().item()
diff = (mine - theirs).abs().max().item()
pm64 = peft.PeftModel.from_pretrained(load_hf(args.model).double(), adapter).eval()
with torch.no_grad():
    exact = pm64(input_ids=ids).logits
del pm64
e_ours, e_ref, bound, ok = fp32_criterion(mine, theirs, exact)
record("4_lora", f"peft {type(pm).__name__} (r={acfg.get('r')}, alpha={acfg.get('lora_alpha')}, targets {sorted(acfg.get('target_modules', []))}) "
       f"vs ours, adapter beside the weights: [max |ours - f64|, max |peft - f64|, bound]; {CRITERION}", [e_ours, e_ref, bound], ok,
       max_abs_diff_ours_vs_peft=diff, adapter_moves_logits_by=moved)
merged = pm.merge_and_unload().eval()
merged_logits = hf_logits(merged, ids)
rel_m = (mine_merged - merged_logits).abs().max().item() / merged_logits.abs().max().item()
# merging rounds W + scale B A in fp32 on each side; compared relative to the logits' size
record("4_lora", "peft merge_and_unload vs ours merged: max |diff| / max |logit|", rel_m, rel_m <= 1e-5,
       max_abs_diff=(mine_merged - merged_logits).abs().max().item())
record("4_lora", "the adapter changes the logits (max |peft - base|)", moved, moved > 1e-3)
if args.tiny and os.path.isdir(os.path.join(args.tiny, "lora_peft")):
    d = os.path.join(args.tiny, "lora_peft")
    o = json.load(open(os.path.join(d, "ours.json")))
    m = peft.PeftModel.from_pretrained(load_hf(d), os.path.join(d, "adapter")).eval()
    tids, tours = torch.tensor(o["ids"]), torch.tensor(o["logits"])
    ttheirs = hf_logits(m, tids)
    m64 = peft.PeftModel.from_pretrained(load_hf(d).double(), os.path.join(d, "adapter")).eval()
    with torch.no_grad():
        texact = m64(input_ids=tids).logits
    e_ours, e_ref, bound, ok = fp32_criterion(tours, ttheirs, texact)
    record("4_lora", f"tiny LoRA adapter written by the tests: [max |ours - f64|, max |peft - f64|, bound]; {CRITERION}",
           [e_ours, e_ref, bound], ok, max_abs_diff_ours_vs_peft=(ttheirs - tours).abs().max().item())
del pm, base, merged

# ---------------------------------------------------------------- 5. greedy generation
print("5. greedy generation", flush=True)
m = load_hf(args.model)
eos = tok.convert_tokens_to_ids("<|im_end|>")
for prompt in ["Write a long story about an owl who lives in a forest.", "Explain in detail how a computer works.", "What is the capital of France?",
               "Continue the sequence: 145, 267, 891. Give 10 more numbers."]:
    out = json.loads(sh(args.bin, "sample", "--model", args.model, "--prompt", prompt, "--temperature", "0", "-n", "1", "--max-new-tokens", "64",
                        "--precision", "fp32", "--json").splitlines()[-1])
    p_ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
    if isinstance(p_ids, dict) or hasattr(p_ids, "input_ids"):
        p_ids = p_ids["input_ids"]
    with torch.no_grad():
        g = m.generate(torch.tensor([p_ids]), do_sample=False, max_new_tokens=64, eos_token_id=eos, pad_token_id=eos)[0, len(p_ids):].tolist()
    ours_new = out["ids"] + ([eos] if len(out["ids"]) < 64 else [])  # we return the completion without its end-of-turn token
    same_prompt = out["prompt_ids"] == list(p_ids)
    n = min(len(g), len(ours_new))
    first_diff = next((i for i in range(n) if g[i] != ours_new[i]), None)
    ok = same_prompt and ours_new == g
    record("5_greedy", f"{prompt!r}: {len(g)} tokens from transformers, {len(ours_new)} from us, identical", ok, ok,
           first_difference=first_diff, ours=tok.decode(ours_new), theirs=tok.decode(g))

# ---------------------------------------------------------------- 6. every family, as transformers builds and saves it
# A tiny random model of each family we run, made and saved by transformers itself (its config.json in
# transformers' own current format), with SmolLM2's tokenizer beside it: our logits against float64 (the
# criterion of check 1), greedy generation of 32 tokens, and a LoRA adapter we train loaded by peft.
print("6. families saved by transformers", flush=True)
from transformers import AutoConfig  # noqa: E402
FAMILIES = {
    "llama": dict(rope_theta=500000.0, attention_bias=False),
    "mistral": dict(sliding_window=4096),
    "qwen2": dict(rope_theta=1000000.0),
    "qwen3": dict(rope_theta=1000000.0, head_dim=24, tie_word_embeddings=True),  # head_dim != hidden / heads
    "olmo2": dict(rope_theta=500000.0),
}
for fam, extra in FAMILIES.items():
    d = os.path.join(args.work, f"family_{fam}")
    shutil.rmtree(d, ignore_errors=True)
    kw = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=len(tok), max_position_embeddings=512, rms_norm_eps=1e-6, bos_token_id=tok.bos_token_id,
              eos_token_id=tok.eos_token_id)
    kw.update(extra)
    cfg = AutoConfig.for_model(fam, **kw)
    torch.manual_seed(1234)
    fm = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():
        for n, p_ in fm.named_parameters():
            if "norm" in n:
                p_.uniform_(0.5, 1.5)  # norms that matter (q_norm / k_norm included)
            elif n.endswith(".bias"):
                p_.normal_(0.0, 0.5)
            else:
                p_.normal_(0.0, 0.2)  # logits of some size, so that rounding and mapping errors show
    fm.save_pretrained(d)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        if os.path.exists(os.path.join(args.model, f)) and not os.path.exists(os.path.join(d, f)):
            shutil.copy(os.path.join(args.model, f), d)
    saved = json.load(open(os.path.join(d, "config.json")))
    fm = load_hf(d)
    fids = torch.tensor([chat_ids[:24], chat_ids[4:28]])
    mine = our_logits(d, fids)
    theirs = hf_logits(fm, fids)
    with torch.no_grad():
        exact = load_hf(d).double()(input_ids=fids).logits
    e_ours, e_ref, bound, ok = fp32_criterion(mine, theirs, exact)
    record("6_families", f"{fam} ({saved['architectures'][0]}, saved by transformers {transformers.__version__}; config keys "
           f"{sorted(k for k in ('rope_parameters', 'rope_theta', 'head_dim') if k in saved)}): logits [max |ours - f64|, "
           f"max |transformers - f64|, bound]; {CRITERION}", [e_ours, e_ref, bound], ok, max_abs_logit=exact.abs().max().item())
    prompt = "Continue the sequence: 145, 267, 891."
    out = json.loads(sh(args.bin, "sample", "--model", d, "--prompt", prompt, "--temperature", "0", "-n", "1", "--max-new-tokens", "32",
                        "--precision", "fp32", "--json").splitlines()[-1])
    p_ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
    if isinstance(p_ids, dict) or hasattr(p_ids, "input_ids"):
        p_ids = p_ids["input_ids"]
    stop = sorted({tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id})  # where our sample stops: end of turn, EOS
    with torch.no_grad():
        g = fm.generate(torch.tensor([p_ids]), do_sample=False, max_new_tokens=32, eos_token_id=stop, pad_token_id=stop[0])[0, len(p_ids):].tolist()
    ours_new = out["ids"] + ([g[-1]] if len(out["ids"]) < 32 and g and g[-1] in stop else [])
    okg = out["prompt_ids"] == list(p_ids) and ours_new == g
    record("6_families", f"{fam}: greedy, {len(g)} tokens from transformers, {len(ours_new)} from us, identical", okg, okg)
    if fam in ("qwen2", "qwen3"):  # GGUF as llama.cpp lays these out (no q/k permutation), written by gguf-py from the same weights
        gpath6 = os.path.join(args.work, f"family_{fam}.gguf")
        gw = gguf.GGUFWriter(gpath6, fam)
        sd = {k: v.detach().float().numpy() for k, v in fm.state_dict().items()}
        C = saved["hidden_size"]
        Dh = saved.get("head_dim") or C // saved["num_attention_heads"]
        gw.add_block_count(saved["num_hidden_layers"])
        gw.add_context_length(saved["max_position_embeddings"])
        gw.add_embedding_length(C)
        gw.add_feed_forward_length(saved["intermediate_size"])
        gw.add_head_count(saved["num_attention_heads"])
        gw.add_head_count_kv(saved["num_key_value_heads"])
        gw.add_key_length(Dh)
        gw.add_value_length(Dh)
        gw.add_rope_freq_base(float(fm.config.rope_parameters["rope_theta"]))
        gw.add_layer_norm_rms_eps(saved["rms_norm_eps"])
        copy_tokenizer(gw, src)  # the models' vocabulary is SmolLM2's 49,152 tokens
        # the names llama.cpp gives these tensors: gguf-py's own map for the architecture, not ours
        tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3 if fam == "qwen3" else gguf.MODEL_ARCH.QWEN2, saved["num_hidden_layers"])
        for k, v in sd.items():
            if k == "lm_head.weight" and saved.get("tie_word_embeddings"):
                continue
            n = tmap.get_name(k, try_suffixes=(".weight", ".bias"))
            assert n, f"gguf-py has no {fam} name for {k}"
            gw.add_tensor(n, np.ascontiguousarray(v, dtype=np.float32))
        gw.write_header_to_file()
        gw.write_kv_data_to_file()
        gw.write_tensors_to_file()
        gw.close()
        gdir6 = os.path.join(args.work, f"family_{fam}_from_gguf")
        sh(args.bin, "import-gguf", gpath6, "--out", gdir6, "--force")
        mine_g = our_logits(gdir6, fids)
        e_ours, e_ref, bound, ok = fp32_criterion(mine_g, theirs, exact)
        try:  # transformers' own GGUF loader beside it (information: it reads no head_dim from qwen3 files, so it fails on this one)
            tg = hf_logits(load_hf(os.path.dirname(gpath6), gguf_file=os.path.basename(gpath6)), fids)
            beside = {"max_abs_diff_ours_vs_transformers_gguf_loader": (mine_g - tg).abs().max().item()}
        except Exception as ex:  # noqa: BLE001
            beside = {"transformers_gguf_loader": f"could not load it: {type(ex).__name__}: {str(ex)[:200]}"}
        record("6_families", f"{fam}: a GGUF of the same weights (gguf-py, arch {fam}) imported by us: [max |ours - f64|, max |transformers - f64|, "
               f"bound]; {CRITERION}", [e_ours, e_ref, bound], ok, **beside)
    data6 = os.path.join(args.work, f"family_{fam}_data.jsonl")
    with open(data6, "w") as f:
        for i in range(8):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Continue: {i}, {i + 1}"},
                                             {"role": "assistant", "content": f"{i + 2}, {i + 3}"}]}) + "\n")
    lo = os.path.join(args.work, f"family_{fam}_lora")
    shutil.rmtree(lo, ignore_errors=True)
    sh(args.bin, "finetune", "--model", d, "--data", data6, "--out", lo, "--loss", "sft", "--set", "finetune.params=lora", "--steps", "4",
       "--set", "finetune.train.batch_size=4", "--set", "finetune.train.lr=1e-2", "--set", "finetune.train.warmup_steps=1",
       "--set", "finetune.train.checkpoint_every=100", "--set", "precision=fp32")
    ad = os.path.join(lo, "adapter")
    mine = our_logits(d, fids, adapter=ad)
    pmf = peft.PeftModel.from_pretrained(load_hf(d), ad).eval()
    theirs = hf_logits(pmf, fids)
    with torch.no_grad():
        exact = peft.PeftModel.from_pretrained(load_hf(d).double(), ad).eval()(input_ids=fids).logits
    e_ours, e_ref, bound, ok = fp32_criterion(mine, theirs, exact)
    moved = (theirs - hf_logits(load_hf(d), fids)).abs().max().item()
    record("6_families", f"{fam}: our LoRA adapter (targets {sorted(json.load(open(os.path.join(ad, 'adapter_config.json')))['target_modules'])}) "
           f"in peft: [max |ours - f64|, max |peft - f64|, bound]; {CRITERION}", [e_ours, e_ref, bound], ok and moved > 1e-4,
           adapter_moves_logits_by=moved)

report["failed"] = failed
with open(args.out, "w") as f:
    json.dump(report, f, indent=2)
print(f"{'FAILED: ' + ', '.join(failed) if failed else 'all checks hold'}; report in {args.out}")
sys.exit(1 if failed else 0)
