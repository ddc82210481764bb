"""Growing-cache decoding in float32 and in bf16 (generate(dtype=...)) on the CPU, best of 2: PRESET N images.

Run from the repository root: python docs/benchmarks/cpu-2026-11-24/bf16_decode.py base 1
"""

import sys

import torch

sys.path.insert(0, "benchmarks")
from bench_hsv_model import generate_seconds, hsv_model  # noqa: E402

preset, n = sys.argv[1], int(sys.argv[2])
m = hsv_model(preset, "cpu")
for dt in (torch.float32, torch.bfloat16):
    print(preset, n, dt, round(min(generate_seconds(m, n, "cpu", dtype=dt) for _ in range(2)), 2), flush=True)
