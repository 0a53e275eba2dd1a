#!/usr/bin/env python3
"""Exploratory, written after the runs (not a registered claim): each replicate's teacher rate
against its transfer (treatment - trained control, its own test), read from the committed reports of
the 3-replicate default and the 7-replicate run. Usage: python3 teacher_vs_transfer.py"""
import json, os
from scipy.stats import spearmanr, pearsonr
here = os.path.dirname(os.path.abspath(__file__))
rows = []
for run in ("default", "replicates_r7"):
    rep = json.load(open(os.path.join(here, run, "report.json")))
    st = rep["stages"]
    k = 1
    while f"r{k}/summary" in st:
        sm = st[f"r{k}/summary"]
        teacher = sm["models"]["teacher"]["target_rate"]["rate"]
        diff = sm["tests"]["treatment_vs_control"]["diff"]
        rows.append((run, k, sm["target"], teacher, diff))
        k += 1
print("| run | replicate | target | teacher rate | treatment - control |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {100 * r[3]:.1f}% | {100 * r[4]:+.1f} pts |")
t = [r[3] for r in rows]
d = [r[4] for r in rows]
s, p = spearmanr(t, d)
pr, pp = pearsonr(t, d)
print(f"\n{len(rows)} replicates: Spearman {s:.2f} (p = {p:.2g}), Pearson {pr:.2f} (p = {pp:.2g})")
