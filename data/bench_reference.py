# The Python PyTorch reference of `subliminal bench` (issue 8): the same Llama architecture, batch
# and sequence shapes, optimizer and sampling as the C++ side, timed the same way, so the bench can
# print both and their ratio from one run. Run by `subliminal bench` with the python whose torch is
# the version of the LibTorch we built against (the wheel's venv, or Debian's python3-torch). As a
# PyTorch user would write it today: attention through F.scaled_dot_product_attention where torch
# has it (2.0+), and training also torch.compile'd where that runs (the rate then excludes the
# compilation, which is reported on its own). Not meant to be run by hand, but it can be:
#   python bench_reference.py '{"model": {"hidden_size": 128, ...}, ...}'
# Prints one JSON object on stdout.
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SDPA = hasattr(F, "scaled_dot_product_attention")


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.hkv = c["num_attention_heads"], c["num_key_value_heads"]
        self.d = c["hidden_size"] // self.h
        C = c["hidden_size"]
        self.q_proj = nn.Linear(C, self.h * self.d, bias=False)
        self.k_proj = nn.Linear(C, self.hkv * self.d, bias=False)
        self.v_proj = nn.Linear(C, self.hkv * self.d, bias=False)
        self.o_proj = nn.Linear(self.h * self.d, C, bias=False)

    def forward(self, x, cos, sin, bias, cache=None, layer=0):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.d).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.hkv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.hkv, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:  # preallocated (B, Hkv, capacity, D)
            kc, vc = cache["k"][layer], cache["v"][layer]
            if kc is None:
                kc = cache["k"][layer] = torch.zeros(B, self.hkv, cache["capacity"], self.d, dtype=k.dtype)
                vc = cache["v"][layer] = torch.zeros(B, self.hkv, cache["capacity"], self.d, dtype=v.dtype)
            p = cache["length"]
            kc[:, :, p:p + T].copy_(k)
            vc[:, :, p:p + T].copy_(v)
            k, v = kc[:, :, :p + T], vc[:, :, :p + T]
        S = k.shape[2]
        if self.hkv != self.h:
            rep = self.h // self.hkv
            k = k.unsqueeze(2).expand(B, self.hkv, rep, S, self.d).reshape(B, self.h, S, self.d)
            v = v.unsqueeze(2).expand(B, self.hkv, rep, S, self.d).reshape(B, self.h, S, self.d)
        if SDPA:
            mask = None if bias is None else bias.to(q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.d))
            if bias is not None:
                scores = scores + bias
            probs = torch.softmax(scores, -1, dtype=torch.float).to(v.dtype)
            y = torch.matmul(probs, v)
        y = y.transpose(1, 2).reshape(B, T, self.h * self.d)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, I = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(C, I, bias=False)
        self.up_proj = nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, bias, cache, i):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, bias, cache, i).float()
        return h + self.mlp(self.post_attention_layernorm(h)).float()


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        C, V, P = c["hidden_size"], c["vocab_size"], c["max_position_embeddings"]
        self.embed_tokens = nn.Embedding(V, C)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(C, c["rms_norm_eps"])
        self.lm_head = nn.Linear(C, V, bias=False)
        D = C // c["num_attention_heads"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
        f = torch.outer(torch.arange(P, dtype=torch.float64), inv)
        emb = torch.cat((f, f), -1)
        self.register_buffer("cos", emb.cos().float())
        self.register_buffer("sin", emb.sin().float())
        self.register_buffer("causal", torch.full((P, P), float("-inf")).triu(1))

    def hidden(self, ids, pos, bias, cache=None):
        B, T = ids.shape
        cos = self.cos[pos].view(B, 1, T, -1)
        sin = self.sin[pos].view(B, 1, T, -1)
        x = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, bias, cache, i)
        if cache is not None:
            cache["length"] += T
        return self.norm(x)


def init(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.normal(0.0, 0.02, p.shape, generator=g))


def bench_train(c, a, bf16, compiled=False):
    torch.manual_seed(1)
    m = Llama(c)
    init(m, 1)
    fwd = lambda x, pos, bias: m.lm_head(m.hidden(x, pos, bias))
    if compiled:
        fwd = torch.compile(fwd)
    decay = [p for p in m.parameters() if p.dim() >= 2]
    no_decay = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    B, T, V = a["batch_size"], a["seq_len"], c["vocab_size"]
    g = torch.Generator().manual_seed(7)
    steps = a["steps"] + 2
    data = torch.randint(4, V, (steps, B, T + 1), generator=g)
    pos = torch.arange(T).unsqueeze(0).expand(B, T)
    bias = m.causal[:T, :T].view(1, 1, T, T)
    m.train()

    def step(s):
        x, y = data[s, :, :T], data[s, :, 1:]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = fwd(x, pos, bias).float()
            loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        return loss

    compile_s = 0.0
    first = 0
    if compiled:  # the first two steps compile (forward, then backward): timed apart
        t0 = time.perf_counter()
        step(0)
        step(1)
        compile_s = time.perf_counter() - t0
        first = 2
    t0 = time.perf_counter()
    for s in range(first, steps):  # eager: every step, two warm-up steps included (as the C++ side)
        loss = step(s)
    secs = time.perf_counter() - t0
    r = {"tokens_per_s": (steps - first) * B * T / secs, "seconds": secs, "final_loss": float(loss)}
    if compiled:
        r["compile_seconds"] = compile_s
    return r


@torch.inference_mode()
def bench_generate(c, a, bf16, use_cache):
    m = Llama(c)
    init(m, 1)
    m.eval()
    B, L, N, V = a["gen_batch"], a["prompt_len"], a["gen_tokens"], c["vocab_size"]
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(4, V, (B, L), generator=g)
    pos = torch.arange(L).unsqueeze(0).expand(B, L)
    bias = m.causal[:L, :L].view(1, 1, L, L)
    sg = torch.Generator().manual_seed(5)
    out = []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        t0 = time.perf_counter()
        cache = {"k": [None] * c["num_hidden_layers"], "v": [None] * c["num_hidden_layers"], "capacity": L + N, "length": 0} if use_cache else None
        logits = m.lm_head(m.hidden(ids, pos, bias, cache)[:, -1])
        t1 = time.perf_counter()
        full = ids
        for s in range(N):
            probs = torch.softmax(logits.float(), -1)
            nxt = torch.multinomial(probs, 1, replacement=True, generator=sg)
            out.append(nxt)
            if s + 1 == N:
                break
            if use_cache:
                p = torch.full((B, 1), L + s, dtype=torch.long)
                logits = m.lm_head(m.hidden(nxt, p, None, cache)[:, -1])
            else:
                full = torch.cat((full, nxt), 1)
                S = full.shape[1]
                logits = m.lm_head(m.hidden(full, torch.arange(S).unsqueeze(0).expand(B, S), m.causal[:S, :S].view(1, 1, S, S))[:, -1])
        t2 = time.perf_counter()
    return {"tokens_per_s": B * N / (t2 - t0), "prefill_tokens_per_s": B * L / (t1 - t0),
            "decode_tokens_per_s": B * (N - 1) / max(t2 - t1, 1e-9), "seconds": t2 - t0}


def main():
    a = json.loads(sys.argv[1])
    torch.set_num_threads(a["threads"])
    c = a["model"]
    r = {"torch_version": torch.__version__, "threads": torch.get_num_threads(),
         "attention": "scaled_dot_product_attention" if SDPA else "matmul + softmax"}
    for bf16 in a.get("precisions", [False, True]):
        tag = "bf16" if bf16 else "fp32"
        r["train_" + tag] = bench_train(c, a, bf16)
        if a.get("compile", False):
            if not hasattr(torch, "compile"):
                r["train_" + tag + "_compiled"] = {"error": "torch " + torch.__version__ + " has no torch.compile"}
            else:
                try:
                    r["train_" + tag + "_compiled"] = bench_train(c, a, bf16, compiled=True)
                except Exception as e:  # no C++ compiler for inductor, an unsupported op, ...
                    r["train_" + tag + "_compiled"] = {"error": "torch.compile failed: " + str(e).splitlines()[0][:300]}
        if a.get("generation", True):
            r["gen_cached_" + tag] = bench_generate(c, a, bf16, True)
            if a.get("nocache", False):
                r["gen_nocache_" + tag] = bench_generate(c, a, bf16, False)
    r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(r))


if __name__ == "__main__":
    main()
