"""GPU call 3: KV-cache vs recompute sampling, base preset, 64 images of 32x32, printed as measured."""
import time

import torch

from artforge.models import DataInfo, get_model_class, make_config

cls = get_model_class("hsv-transformer")
mcfg, _ = make_config(cls, {"preset": "base"})
model = cls(mcfg, DataInfo({"codec": "hsv"}, 8193, (32, 32))).cuda().eval()
for use_cache in (True, False):
    g = torch.Generator("cuda").manual_seed(0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        t = time.perf_counter()
        model.generate(2, generator=g, use_cache=use_cache)
        torch.cuda.synchronize()
        print(f"warm-up cache={use_cache} {time.perf_counter() - t:.2f}s", flush=True)
        for n in (1, 64):
            t = time.perf_counter()
            model.generate(n, generator=g, use_cache=use_cache)
            torch.cuda.synchronize()
            print(f"generate n={n} x 1024 tokens, cache={use_cache}: {time.perf_counter() - t:.2f}s", flush=True)
