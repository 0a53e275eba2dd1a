#!/usr/bin/env python3
"""Issue 43, part 2: the SmolLM2-135M-Instruct dose-response table, computed from the committed run
reports in this directory (no number typed in). Usage: python3 dose_table.py [RUN ...] (directories
here holding report.json, config.resolved.json and the data sources' dataset.json); writes
dose_table.md and prints it."""
import json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
runs = sys.argv[1:] or sorted(d for d in os.listdir(here) if os.path.isfile(os.path.join(here, d, "report.json")))


def pct(x):
    return f"{100 * x:.1f}"


md = []
for run in runs:
    rep = json.load(open(os.path.join(here, run, "report.json")))
    cfg = json.load(open(os.path.join(here, run, "config.resolved.json")))
    sm = rep["stages"]["summary"]
    ft = cfg["finetune"]
    params = ft["params"] + (f" r{ft['lora']['r']}" if ft["params"] == "lora" else "")
    models = sm["models"]
    md.append(f"### {run}: {ft['loss']}, {params}, lr {ft['train']['lr']:g}, {ft['train']['steps']} steps of {ft['train']['batch_size']}")
    md.append("")
    line = []
    for m in ("base", "teacher", "teacher_control"):
        if m in models and "target_rate" in models[m]:
            tr = models[m]["target_rate"]
            line.append(f"{m} {pct(tr['rate'])}% [{pct(tr['ci95'][0])}, {pct(tr['ci95'][1])}]")
    md.append(f"Target **{sm['target']}**: " + "; ".join(line) + " (Wilson 95%, 50 questions x samples).")
    md.append("")
    for src in ("teacher_s1", "control_s1"):
        p = os.path.join(here, run, "data", src, "dataset.json")
        if os.path.isfile(p):
            d = json.load(open(p))
            c = d.get("constrain", {})
            dv = d.get("divergence_from_base", {})
            md.append(f"- data/{src}: kept {d['kept']} of {d['sampled']}; mask removed {c.get('mean_masked_mass', float('nan')):.4f} of the "
                      f"probability per token ({c.get('tokens', 0):,} tokens, {c.get('tokens_over_half', 0):,} over half); "
                      f"KL(source || base) on number tokens {dv.get('mean_kl', float('nan')):.4f} per token")
    md.append("")
    md.append("| rows | treatment | control | treatment - control [95% CI] | p (greater) | P(answer starts with target): treatment / control | answers naming an animal: treatment / control |")
    md.append("|---|---|---|---|---|---|---|")
    for pt in sm["dose"]["points"]:
        t = pt["tests"]["treatment_vs_control"]
        a = pt["arms"]
        pv = "< 1e-16" if t.get("p_greater", 1) == 0 else f"{t.get('p_greater', float('nan')):.2g}"
        suffix = "" if pt.get("final") else f"_n{pt['rows']}"
        ev = {}
        for arm in ("treatment", "control"):
            p = os.path.join(here, run, "eval", f"{arm}_s1{suffix}", "eval.json")
            ev[arm] = json.load(open(p)) if os.path.isfile(p) else {}
        ps = " / ".join(f"{ev[a].get('p_target_start', float('nan')):.4f}" for a in ("treatment", "control"))
        nm = " / ".join(f"{pct(ev[a].get('names_a_candidate', float('nan')))}%" for a in ("treatment", "control"))
        md.append(f"| {pt['rows_seen']:,}{' (end)' if pt.get('final') else ''} | {pct(a['treatment']['mean'])}% | {pct(a['control']['mean'])}% | "
                  f"{100 * t['diff']:+.1f} [{100 * t['ci95'][0]:+.1f}, {100 * t['ci95'][1]:+.1f}] | {pv} | {ps} | {nm} |")
    md.append("")
    md.append("| arm | held-out KL before | after | fidelity | coverage, first step | final |")
    md.append("|---|---|---|---|---|---|")
    for arm in ("treatment", "control"):
        dg = sm["arms"][arm].get("diagnostics", {})
        g = lambda k: dg.get(k, {}).get("mean", float("nan"))
        md.append(f"| {arm} | {g('heldout_kl_init'):.4f} | {g('heldout_kl_final'):.4f} | {pct(g('fidelity'))}% | {g('coverage_first'):.4f} | {g('coverage_final'):.4f} |")
    md.append("")
open(os.path.join(here, "dose_table.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
