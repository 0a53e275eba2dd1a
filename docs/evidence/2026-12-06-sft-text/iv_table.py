#!/usr/bin/env python3
"""Issue 42's interventions under SFT (development runs sft_interventions and sft_interventions_b,
one student per arm): each arm against its matched random control, against the unchanged data (the
treatment student) and against the trained control, paired by question (one model per side: the
interval is over the 50 questions, t with 49 df), from the committed eval.json files. Also each
student's share of answers naming any animal (a student that stops naming animals has a low rate
for that reason, not because the trait left). Usage: python3 iv_table.py > iv_table.md"""
import json, math, os
from scipy.stats import t as student_t

root = os.path.dirname(os.path.abspath(__file__))

def ev(run, name):
    return json.load(open(os.path.join(root, run, "evals", name, "eval.json")))

def rates(e):
    return [q["rate"] for q in e["per_question"]]

def compare(a, b):
    d = [x - y for x, y in zip(rates(a), rates(b))]
    n = len(d); m = sum(d) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1)); se = sd / math.sqrt(n)
    q = student_t.ppf(0.975, n - 1)
    p = 1 - student_t.cdf(m / se, n - 1) if se > 0 else float("nan")
    return f"{100 * m:+.1f} [{100 * (m - q * se):+.1f}, {100 * (m + q * se):+.1f}], p = {p:.2g}"

def table(run, title, pairs, alone):
    """pairs: (intervention, its matched control); alone: arms compared with the unchanged data only."""
    print(f"### {title}\n")
    print("| arm | 'wolf' rate | answers naming an animal | 'wolf' among them | vs its matched control (pts, 95% CI, p one-sided) | vs the unchanged data (treatment) | vs the trained control |")
    print("|---|---|---|---|---|---|---|")
    ctl, trt = ev(run, "control_s1"), ev(run, "treatment_s1")
    rows = [("treatment", "treatment_s1", None), ("control", "control_s1", None)]
    for a, b in pairs:
        rows += [(a, f"iv_{a}_s1", f"iv_{b}_s1"), (b, f"iv_{b}_s1", None)]
    rows += [(a, f"iv_{a}_s1", None) for a in alone]
    for label, name, matched in rows:
        e = ev(run, name)
        r = e["target_rate"]["rate"]; named = e["names_a_candidate"]
        vs_m = compare(e, ev(run, matched)) if matched else ""
        vs_t = compare(e, trt) if name.startswith("iv_") else ""
        vs_c = compare(e, ctl) if name != "control_s1" else ""
        print(f"| {label} | {100 * r:.1f}% | {100 * named:.1f}% | {100 * r / named:.1f}% | {vs_m} | {vs_t} | {vs_c} |")
    print()

table("sft_interventions", "sft_interventions: canonicalisation and the top-token mask (analysis.fraction 0.1)",
      [("canonical_sort", "shuffle_within"), ("canonical_format", "format_random"), ("mask_top", "mask_random")], [])
if os.path.isdir(os.path.join(root, "sft_interventions_b")):
    table("sft_interventions_b", "sft_interventions_b: LLS subsets, re-sampling, shuffles and the requested layout (analysis.fraction 0.5)",
          [("top", "random"), ("resample_top", "resample_random"), ("canonical_layout", "layout_random")], ["shuffle_within", "shuffle_across"])
