#!/usr/bin/env python3
"""The bag-level audit table of issue 42 from the committed audit.json files under audits/ (written by
`subliminal audit`, see README.md for the commands). Usage: python3 audit_table.py > audit_table.md"""
import json, os

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "audits")
print("| dataset (audited under its teacher's prompt, against the control teacher's data) | examples (data / reference) | k | bags (data / reference) | AUROC [95% CI] | TPR at 5% FPR | TPR at 1% FPR |")
print("|---|---|---|---|---|---|---|")
for name in sorted(os.listdir(root)):
    f = os.path.join(root, name, "audit.json")
    if not os.path.exists(f):
        continue
    a = json.load(open(f))
    for b in a["bags"]:
        if not b["defined"]:
            print(f"| {name} | {a['n']} / {a['reference_n']} | {b['k']} | {b['bags']} / {b['reference_bags']} | undefined ({b['why']}) | | |")
            continue
        roc = {round(r["fpr_target"], 2): r["tpr"] for r in b["roc"]}
        print(f"| {name} | {a['n']} / {a['reference_n']} | {b['k']} | {b['bags']} / {b['reference_bags']} | "
              f"{b['auroc']:.3f} [{b['auroc_ci95'][0]:.3f}, {b['auroc_ci95'][1]:.3f}] | {roc[0.05]:.2f} | {roc[0.01]:.2f} |")
