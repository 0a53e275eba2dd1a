#!/usr/bin/env python3
"""Runs a command and reports its wall time and peak memory: summed PSS (and RSS) over its process
group, sampled every 0.5 s from /proc/<pid>/smaps_rollup (PSS shares library pages among the
processes that map them, so parallel workers are not over-counted). Exit code: the command's.
Usage: scripts/peak_mem.py [--out FILE.json] -- CMD [ARGS...]"""
import json, os, signal, subprocess, sys, time

args = sys.argv[1:]
out = None
if args[:1] == ["--out"]:
    out, args = args[1], args[2:]
if args[:1] == ["--"]:
    args = args[1:]
if not args:
    sys.exit(__doc__)
t0 = time.time()
p = subprocess.Popen(args, start_new_session=True)
peak_pss = peak_rss = 0
def sample():
    pss = rss = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.getpgid(int(d)) != p.pid:
                continue
            with open(f"/proc/{d}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except (OSError, ProcessLookupError):
            pass
    return pss, rss
try:
    while p.poll() is None:
        a, b = sample()
        peak_pss, peak_rss = max(peak_pss, a), max(peak_rss, b)
        time.sleep(0.5)
except KeyboardInterrupt:
    os.killpg(p.pid, signal.SIGTERM)
    p.wait()
wall = time.time() - t0
res = {"command": args, "exit_code": p.returncode, "wall_s": round(wall, 1), "peak_pss_mb": round(peak_pss / 1024), "peak_rss_mb": round(peak_rss / 1024)}
print(f"[peak_mem] {wall/60:.1f} min wall, peak {peak_pss/1024:.0f} MB summed PSS ({peak_rss/1024:.0f} MB summed RSS), exit {p.returncode}", file=sys.stderr)
if out:
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
sys.exit(p.returncode)
