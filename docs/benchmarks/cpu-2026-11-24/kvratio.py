"""KV-cache decoding (growing cache, best of 2) against recomputing the prefix (one call): PRESET N images.

Run from the repository root: python docs/benchmarks/cpu-2026-11-24/kvratio.py base 1
"""

import sys
import time

import torch

sys.path.insert(0, "benchmarks")
from bench_hsv_model import generate_seconds, hsv_model  # noqa: E402

preset, n = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
m = hsv_model(preset, "cpu")
kv = min(generate_seconds(m, n, "cpu") for _ in range(2))
print(preset, n, "kv", round(kv, 2), flush=True)
g = torch.Generator().manual_seed(0)
t = time.perf_counter()
m.generate(n, generator=g, use_cache=False)
rc = time.perf_counter() - t
print(preset, n, "recompute", round(rc, 2), "ratio", round(rc / kv, 1), flush=True)
