#!/usr/bin/env python3
"""Independent reference: Hugging Face LlamaForCausalLM's forward pass, written from the
transformers source (modeling_llama.py: LlamaRMSNorm, rotate_half/apply_rotary_pos_emb, repeat_kv,
LlamaMLP; modeling_rope_utils.py: _compute_llama3_parameters, linear scaling; modeling_qwen2.py:
q/k/v biases; modeling_mistral.py), reading a model directory the way transformers does
(config.json field names, safetensors tensor names, single file or sharded with
model.safetensors.index.json). Plain PyTorch, no transformers/safetensors packages needed.

usage: hf_llama_reference.py MODEL_DIR IDS_JSON OUT_JSON [ADAPTER_DIR]
  ADAPTER_DIR: a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors), merged the
  way peft's LoraLayer.merge does: W += (lora_alpha / r) * B @ A for every
  base_model.model.<module>.lora_A.weight / lora_B.weight pair.
  IDS_JSON: {"ids": [[...], ...]}   OUT_JSON: {"logits": [[[...]]]}  (batch, time, vocab)
"""
import json
import math
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    base = 8 + n
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + b:base + en]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).float()
    return out


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def main():
    model_dir, ids_path, out_path = sys.argv[1:4]
    cfg = json.load(open(f"{model_dir}/config.json"))
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "olmo2": "Olmo2ForCausalLM"}
    assert cfg["architectures"] == [arch[cfg["model_type"]]], cfg["architectures"]
    try:
        index = json.load(open(f"{model_dir}/model.safetensors.index.json"))
        W = {}
        for shard in sorted(set(index["weight_map"].values())):
            W.update(load_safetensors(f"{model_dir}/{shard}"))
    except FileNotFoundError:
        W = load_safetensors(f"{model_dir}/model.safetensors")
    if len(sys.argv) > 4:
        adir = sys.argv[4]
        acfg = json.load(open(f"{adir}/adapter_config.json"))
        assert acfg["peft_type"] == "LORA" and acfg["bias"] == "none" and not acfg["fan_in_fan_out"]
        scale = acfg["lora_alpha"] / acfg["r"]
        A = load_safetensors(f"{adir}/adapter_model.safetensors")
        merged = 0
        for name, a in A.items():
            assert name.startswith("base_model.model."), name
            if not name.endswith(".lora_A.weight"):
                continue
            module = name[len("base_model.model."):-len(".lora_A.weight")]
            assert module.split(".")[-1] in acfg["target_modules"], module
            b = A[name.replace(".lora_A.", ".lora_B.")]
            assert a.shape[0] == acfg["r"] and b.shape[1] == acfg["r"]
            W[module + ".weight"] = W[module + ".weight"] + scale * (b.float() @ a.float())
            merged += 1
        assert merged > 0 and merged * 2 == len(A), (merged, len(A))
    ids = torch.tensor(json.load(open(ids_path))["ids"], dtype=torch.long)
    B, T = ids.shape
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    rs = cfg.get("rope_scaling") or {}
    rtype = rs.get("rope_type", rs.get("type", "default"))
    pos = torch.arange(T).float()
    if rtype == "linear":
        pos = pos / rs["factor"]
    elif rtype == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv_freq
        inv_llama = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_llama / factor + smooth * inv_llama
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        inv_freq = torch.where(medium, smoothed, inv_llama)
    else:
        assert rtype == "default", rtype

    def lin(h, name):
        y = h @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    mask = torch.full((T, T), float("-inf")).triu(1)
    x = W["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        olmo2 = cfg["model_type"] == "olmo2"  # modeling_olmo2.py: no pre-norms; q/k norms over the whole projection
        h = x if olmo2 else rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj")
        k = lin(h, p + "self_attn.k_proj")
        if olmo2:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q = q.view(B, T, H, D)
        k = k.view(B, T, Hkv, D)
        if cfg["model_type"] == "qwen3":  # modeling_qwen3.py Qwen3Attention: q_norm / k_norm per head, before RoPE
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = lin(h, p + "self_attn.v_proj").view(B, T, Hkv, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k[:, :, None].expand(B, Hkv, H // Hkv, T, D).reshape(B, H, T, D)  # repeat_kv
        v = v[:, :, None].expand(B, Hkv, H // Hkv, T, D).reshape(B, H, T, D)
        att = (q @ k.transpose(2, 3)) / math.sqrt(D) + mask
        att = torch.softmax(att.float(), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, H * D)
        if olmo2:
            x = x + rms_norm(lin(y, p + "self_attn.o_proj"), W[p + "post_attention_layernorm.weight"], eps)
            g, u = lin(x, p + "mlp.gate_proj"), lin(x, p + "mlp.up_proj")
            x = x + rms_norm(lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj"), W[p + "post_feedforward_layernorm.weight"], eps)
            continue
        x = x + lin(y, p + "self_attn.o_proj")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = lin(h, p + "mlp.gate_proj")
        u = lin(h, p + "mlp.up_proj")
        x = x + lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj")
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    logits = x @ head.T
    json.dump({"logits": logits.tolist()}, open(out_path, "w"))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
