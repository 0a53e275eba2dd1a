#!/usr/bin/env python3
"""The SFT dose-response figure of issue 42, drawn from the committed run reports (no plotting library:
plain SVG). Each run's summary holds a dose table (finetune.snapshots): treatment - control with its
95% interval after each number of training rows. Usage: python3 dose_figure.py RUN [RUN ...]
(directories under this one holding report.json); writes dose_figure.svg and dose_figure.md here."""
import json, math, os, sys

here = os.path.dirname(os.path.abspath(__file__))
runs = sys.argv[1:] or ["sft_dose_lr1e-3", "sft_dose", "sft_dose_distill", "sft_dose_r32", "sft_dose_all", "numbers_sft"]
table_only = ["sft_dose_greedy"]  # its treatment kept 1,764 rows: its "rows" repeat them (not unique), so it is not drawn
colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#000000", "#8c564b"]
series = []
for run in runs + [r for r in table_only if r not in runs]:
    rep = json.load(open(os.path.join(here, run, "report.json")))
    sm = rep["stages"]["summary"]
    cfg = json.load(open(os.path.join(here, run, "config.resolved.json")))
    ft = cfg["finetune"]
    params = ft["params"] + (f" r{ft['lora']['r']}" if ft["params"] == "lora" else "")
    label = f"{run}: {ft['loss']}, {params}, lr {ft['train']['lr']:g}, teacher T = {cfg['dataset']['temperature']:g}"
    if cfg.get("replicates", {}).get("count", 1) > 1:
        label += f"; {cfg['replicates']['count']} replicates pooled (confirmatory)"
    pts = []
    for p in sm["dose"]["points"]:
        t = p["tests"]["treatment_vs_control"]
        pts.append((p["rows_seen"], 100 * t["diff"], 100 * t["ci95"][0], 100 * t["ci95"][1], t.get("p_greater", float("nan")),
                    100 * p["arms"]["treatment"]["mean"], 100 * p["arms"]["control"]["mean"]))
    series.append((run, label, pts, 100 * sm["models"]["teacher"]["target_rate"]["rate"] if "target_rate" in sm["models"]["teacher"] else float("nan")))

W, L, R, T = 760, 70, 20, 30
B = 72 + 16 * (len(series) - len(table_only))
H = 300 + B
drawn = [s for s in series if s[0] not in table_only]
xs = [p[0] for _, _, pts, _ in drawn for p in pts]
ys = [v for _, _, pts, _ in drawn for p in pts for v in p[1:4]] + [0.0]
x0, x1 = math.log10(min(xs) / 1.4), math.log10(max(xs) * 1.4)
y0, y1 = math.floor(min(ys) / 5) * 5, math.ceil(max(ys) / 5) * 5
X = lambda x: L + (math.log10(x) - x0) / (x1 - x0) * (W - L - R)
Y = lambda y: T + (y1 - y) / (y1 - y0) * (H - T - B)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">Treatment minus trained control (points, 95% CI) by unique training rows</text>']
for y in range(int(y0), int(y1) + 1, 5):
    svg.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(y):.1f}" y2="{Y(y):.1f}" stroke="{"#000" if y == 0 else "#ddd"}"/>')
    svg.append(f'<text x="{L - 6}" y="{Y(y) + 4:.1f}" text-anchor="end">{y:+d}</text>')
for x in [1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000]:
    if x0 <= math.log10(x) <= x1:
        svg.append(f'<line x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
        svg.append(f'<text x="{X(x):.1f}" y="{H - B + 16}" text-anchor="middle">{x:,}</text>')
svg.append(f'<text x="{(L + W - R) / 2}" y="{H - B + 34}" text-anchor="middle">training rows (examples seen once; log scale)</text>')
for i, (run, label, pts, teacher) in enumerate(drawn):
    c = colors[i % len(colors)]
    dx = (i - (len(series) - 1) / 2) * 5
    svg.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (c, " ".join(f"{X(p[0]) + dx:.1f},{Y(p[1]):.1f}" for p in pts)))
    for p in pts:
        svg.append(f'<line x1="{X(p[0]) + dx:.1f}" x2="{X(p[0]) + dx:.1f}" y1="{Y(p[2]):.1f}" y2="{Y(p[3]):.1f}" stroke="{c}"/>')
        svg.append(f'<circle cx="{X(p[0]) + dx:.1f}" cy="{Y(p[1]):.1f}" r="3.5" fill="{c}"/>')
    ly = H - B + 52 + 16 * i
    svg.append(f'<rect x="{L}" y="{ly - 9}" width="12" height="10" fill="{c}"/><text x="{L + 18}" y="{ly}">{label} (teacher {teacher:.1f}%)</text>')
svg.append("</svg>")
open(os.path.join(here, "dose_figure.svg"), "w").write("\n".join(svg) + "\n")
md = ["| run | rows | treatment | control | treatment - control [95% CI] | p (greater) |", "|---|---|---|---|---|---|"]
for run, label, pts, _ in series:
    for p in pts:
        pv = "< 1e-16" if p[4] == 0 else f"{p[4]:.2g}"
        md.append(f"| {run} | {p[0]:,} | {p[5]:.1f}% | {p[6]:.1f}% | {p[1]:+.1f} [{p[2]:+.1f}, {p[3]:+.1f}] | {pv} |")
open(os.path.join(here, "dose_figure.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
