"""Sum an `ncu --csv --metrics gpu__time_duration.sum` log per kernel name (scripts/gpu-check.sh).
Usage: python3 ncu_summary.py LOG.csv"""
import csv, sys
from collections import defaultdict

lines = open(sys.argv[1], errors="replace").read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
if start is None:
    sys.exit(f"{sys.argv[1]}: no ncu CSV table in it")
tot, cnt = defaultdict(float), defaultdict(int)
scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}
for r in csv.DictReader(lines[start:]):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = r["Kernel Name"].split("(")[0][:80]
    tot[name] += float(r["Metric Value"].replace(",", "")) * scale.get(r["Metric Unit"], 1.0)
    cnt[name] += 1
all_us = sum(tot.values())
print(f"{sum(cnt.values())} kernels, {all_us / 1000:.2f} ms of GPU time")
for name, us in sorted(tot.items(), key=lambda kv: -kv[1])[:30]:
    print(f"{us / 1000:9.3f} ms {100 * us / all_us:5.1f}% {cnt[name]:5d}x  {name}")
