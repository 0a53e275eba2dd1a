# The transformers + peft reference of `subliminal bench --reference transformers` (issue 43): what a
# user would otherwise run on the same model directory, on the same CPU, with the same shapes as the
# C++ side, timed the same way, so the bench prints both and their ratio from one run.
#   generation: AutoModelForCausalLM.generate on the same prompt token ids (left-padded with the same
#     pad id and an attention mask), sampling at temperature 1 from the full distribution (top_k 0,
#     top_p 1), every row exactly gen_tokens new tokens (min_new_tokens = max_new_tokens), KV cache on;
#   LoRA training: peft's LoraConfig (the same rank, alpha, targets, no dropout) on the same model,
#     AdamW (the same lr, betas, eps, no weight decay) with gradient-norm clipping at 1, causal LM
#     cross-entropy on every token of the same token sequences, batch x seq_len per step.
# Run by `subliminal bench` with the verification tier's python (.venv-verify: transformers, peft,
# torch). Not meant to be run by hand, but it can be:  python bench_transformers.py '{...}' (or @FILE.json)
# Prints one JSON object on stdout.
import json
import resource
import sys
import time

import torch
import torch.nn.functional as F


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def left_pad(prompts, pad_id):
    L = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), L), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, L - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[r, L - len(p):] = 1
    return ids, mask


def main():
    arg = sys.argv[1]
    if arg.startswith("@"):  # the arguments in a file (one command-line argument holds at most 128 kB)
        with open(arg[1:]) as f:
            arg = f.read()
    a = json.loads(arg)
    torch.set_num_threads(int(a["threads"]))
    torch.manual_seed(int(a.get("seed", 1)))
    import transformers
    from transformers import AutoModelForCausalLM

    out = {"torch_version": torch.__version__, "transformers_version": transformers.__version__, "threads": torch.get_num_threads()}
    attn = a.get("attn_implementation", "sdpa")
    model = AutoModelForCausalLM.from_pretrained(a["model"], dtype=torch.float32, attn_implementation=attn)
    out["attention"] = attn
    pad = int(a["pad_id"])

    if a.get("generation", True):
        model.eval()
        ids, mask = left_pad(a["prompts"], pad)
        T = int(a["gen_tokens"])
        kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=pad, use_cache=True)
        with torch.inference_mode():
            model.generate(ids[:2], attention_mask=mask[:2], max_new_tokens=2, min_new_tokens=2, **kw)  # warm-up
            runs = []
            for _ in range(int(a.get("repeats", 1))):
                t0 = time.perf_counter()
                g = model.generate(ids, attention_mask=mask, max_new_tokens=T, min_new_tokens=T, **kw)
                runs.append(time.perf_counter() - t0)
        new = g.shape[1] - ids.shape[1]
        if new != T:
            raise SystemExit(f"generate made {new} new tokens per row, not {T}")
        secs = sum(runs) / len(runs)
        out["generate"] = {"seconds": secs, "runs": runs, "tokens_per_s": ids.shape[0] * T / secs, "batch": ids.shape[0],
                           "prompt_len": ids.shape[1], "new_tokens": T}

    if a.get("lora", True):
        from peft import LoraConfig, get_peft_model
        import peft

        out["peft_version"] = peft.__version__
        lc = LoraConfig(r=int(a["lora_r"]), lora_alpha=float(a["lora_alpha"]), lora_dropout=0.0, target_modules=a["lora_targets"],
                        bias="none", task_type="CAUSAL_LM")
        pm = get_peft_model(model, lc)
        pm.train()
        params = [p for p in pm.parameters() if p.requires_grad]
        out["lora_trainable"] = sum(p.numel() for p in params)
        opt = torch.optim.AdamW(params, lr=float(a["lr"]), betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
        seqs = torch.tensor(a["sequences"], dtype=torch.long)  # (steps x batch, seq_len + 1)
        B, S = int(a["batch_size"]), seqs.shape[1] - 1
        steps = seqs.shape[0] // B
        t0 = time.perf_counter()
        losses = []
        for s in range(steps):
            x = seqs[s * B:(s + 1) * B]
            logits = pm(input_ids=x[:, :-1]).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        secs = time.perf_counter() - t0
        out["lora"] = {"seconds": secs, "steps": steps, "tokens_per_s": steps * B * S / secs, "first_loss": losses[0], "final_loss": losses[-1]}
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
