"""hsv-transformer speed: training tokens/s (and MFU on a GPU), KV-cache vs recompute sampling.

On a CPU it measures the tiny preset; with CUDA it also measures the base preset the issue names
(d512, 8 layers, 8 heads, batch 64, 32x32 hsv544, bf16, torch.compile) and sampling 64 and 256
images (bf16, the decoding default on CUDA).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path


def train_speed(cache: Path, preset: str, batch: int, steps: int, device: str, compile_: bool) -> dict:
    from artforge.data.cache import cache_info
    from artforge.engine.trainer import TrainConfig, Trainer, new_run_config
    from artforge.models import DataInfo, get_model_class, make_config

    cls = get_model_class("hsv-transformer")
    mcfg, _ = make_config(cls, {"preset": preset})
    cfg = TrainConfig(steps=steps, batch_size=batch, log_every=max(1, steps // 4), eval_every=steps, device=device,
                      compile=compile_, samples=4, lr=3e-4)
    ci = cache_info(cache)
    info = DataInfo(ci["codec"], ci["vocab_size"], tuple(ci["token_shape"]))
    with tempfile.TemporaryDirectory() as d:
        run = Path(d)
        Trainer(run, new_run_config(cls, mcfg, preset, info, str(cache), None, cfg), cfg, resume=False,
                quiet=True).fit()
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    last = [m for m in lines if m["split"] == "train"][-2:]  # after warm-up / compilation
    return {k: sum(m.get(k, 0.0) for m in last) / len(last) for k in ("tokens_per_s", "mfu", "steps_per_s")}


def hsv_model(preset: str, device: str, **overrides):
    """A fresh hsv-transformer for 32x32 hsv544 tokens (vocabulary 8193), in eval mode."""
    from artforge.models import DataInfo, get_model_class, make_config

    cls = get_model_class("hsv-transformer")
    mcfg, _ = make_config(cls, {"preset": preset, **overrides})
    return cls(mcfg, DataInfo({"codec": "hsv"}, 8193, (32, 32))).to(device).eval()


def generate_seconds(model, n: int, device: str, **options) -> float:
    """Seconds for ``model.generate(n, **options)`` (bf16 on CUDA, its default), after a one-image warm-up.

    The time includes what a user's call pays besides the steps: the bf16 copy of the weights and
    the capture of the CUDA graphs."""
    import torch

    g = torch.Generator(torch.device(device)).manual_seed(0)
    model.generate(1, generator=g, **options)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    model.generate(n, generator=g, **options)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def sample_speed(preset: str, n: int, device: str, model=None) -> tuple[float, float]:
    """Seconds to generate n images with the KV cache and by recomputing the prefix (after a warm-up)."""
    model = model if model is not None else hsv_model(preset, device)
    return (generate_seconds(model, n, device, use_cache=True, static=False),
            generate_seconds(model, n, device, use_cache=False))


def main() -> None:
    import torch

    from artforge.data.cache import build_cache

    cuda = torch.cuda.is_available()

    def row(*r: str) -> None:  # print as measured: a long run that is cut short keeps its figures
        print(f"| {' | '.join(r)} |", flush=True)

    with tempfile.TemporaryDirectory() as d:
        cache = Path(d) / "emoji.h5"
        build_cache("builtin:emoji32", "hsv544", cache, workers=1, progress=False)
        if cuda:  # the GPU figures the issue names; the CPU ones are measured on CPU machines
            for batch in (64, 128):
                r = train_speed(cache, "base", batch, 120, "cuda", True)
                row(f"train base, batch {batch}, 32x32 hsv544, bf16, compile", f"{r['tokens_per_s']:,.0f} tokens/s",
                    f"MFU {r['mfu']:.1%}")
        else:
            r = train_speed(cache, "tiny", 16, 24, "cpu", False)
            row("train tiny, batch 16, 32x32 hsv544, CPU", f"{r['tokens_per_s']:,.0f} tokens/s", "-")
    from decode_ops import count_step

    ops = count_step()
    row("operators per decoding step, base, bf16 (dispatcher count, `decode_ops.py`)", f"{sum(ops.values())}",
        ", ".join(f"{k} {v}" for k, v in ops.most_common(4)))
    preset, device = ("base", "cuda") if cuda else ("tiny", "cpu")
    model = hsv_model(preset, device)
    for n in (64, 256) if cuda else (4,):
        kv, full = sample_speed(preset, n, device, model)
        row(f"sample {n} x 1024 tokens, {preset}, {device}: KV cache, step by step", f"{kv:.2f} s",
            f"{full / kv:.1f}x faster than recomputing the prefix ({full:.1f} s)")
        if cuda:  # fixed-shape steps replayed as CUDA graphs, one per length bucket
            st = generate_seconds(model, n, device, static=True)
            row(f"sample {n} x 1024 tokens, {preset}, {device}: KV cache, CUDA graphs", f"{st:.2f} s",
                f"{full / st:.1f}x faster than recomputing the prefix")

if __name__ == "__main__":
    main()
