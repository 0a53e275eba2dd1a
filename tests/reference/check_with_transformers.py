# Loads the checkpoints subliminal's tests export with real Hugging Face transformers (and the LoRA
# adapter with real peft) and compares their logits with subliminal's own. Not part of the suite
# (transformers and peft are not Debian packages); for a machine that has them:
#   SUBLIMINAL_EXPORT_CHECKPOINTS=$PWD/.devcheck build/subliminal_tests --gtest_filter='HfArchNumeric.Families*:LoraNumeric*'
#   cp tests/reference/check_with_transformers.py .devcheck/ && python3 .devcheck/check_with_transformers.py
# It prints, per checkpoint (Llama GQA, Mistral sharded, Qwen2 with biases in bf16, Llama-3 RoPE +
# biases + head_dim, linear RoPE, a LoRA adapter in PEFT layout), the max |transformers - ours|.
import json, os, sys, time
import torch
import transformers
print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
from transformers import AutoModelForCausalLM
root = os.path.dirname(os.path.abspath(__file__))
worst_all = 0.0
for name in sorted(os.listdir(root)):
    d = os.path.join(root, name)
    if not os.path.isdir(d) or not os.path.exists(os.path.join(d, "ours.json")):
        continue
    ours = json.load(open(os.path.join(d, "ours.json")))
    ids = torch.tensor(ours["ids"])
    try:
        m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
        if name == "lora_peft":
            import peft
            print("peft", peft.__version__)
            m = peft.PeftModel.from_pretrained(m, os.path.join(d, "adapter"))
        m.eval()
        with torch.no_grad():
            lg = m(input_ids=ids).logits
        diff = (lg - torch.tensor(ours["logits"])).abs().max().item()
        worst_all = max(worst_all, diff)
        print(f"{name}: {type(m).__name__} max |transformers - subliminal| = {diff:.3g}", flush=True)
    except Exception as e:
        print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)
print("worst", worst_all)
