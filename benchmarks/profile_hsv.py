"""Where the hsv-transformer's time goes: a bare training step and a KV-cache decoding step, profiled.

Not part of `make bench` (it prints profiler tables, not figures to quote). It answers the two open
GPU questions in docs/benchmarks.md: why the `base` preset trains at 33% MFU rather than 40%, and
why one GPU sampling run spent ~57 ms on every decoding step. Each part prints as soon as it is
measured, so a run cut short keeps what it had.

    python benchmarks/profile_hsv.py                      # base preset on CUDA
    python benchmarks/profile_hsv.py --device cpu --preset tiny --batch 4 --steps 3   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hsv_model import generate_seconds, hsv_model  # noqa: E402


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _table(prof, device: str, rows: int) -> str:
    for key in (("self_device_time_total", "self_cuda_time_total") if device == "cuda" else ("self_cpu_time_total",)):
        try:
            return prof.key_averages().table(sort_by=key, row_limit=rows)
        except (AttributeError, KeyError, ValueError):
            continue
    return prof.key_averages().table(row_limit=rows)


def _attention(args):
    """The SDPA backend the training steps use (``default``: PyTorch's own choice)."""
    if args.attention == "default":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([{"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                         "cudnn": SDPBackend.CUDNN_ATTENTION}[args.attention]])


def lse_loss(model, batch: dict) -> dict:
    """The model's training loss written as logsumexp minus the target's logit (the same value as
    its cross-entropy). Its backward needs the logits and one number per token, where log-softmax's
    reads a full-vocabulary output. A candidate for the MFU gap, timed with ``--loss lse``."""
    import torch

    from artforge.augment import augment

    tokens = augment(batch["tokens"], flip=True) if model.config.flip else batch["tokens"]  # as the model does
    logits = model.logits(model._inputs(tokens)).reshape(-1, model.vocab)
    target = logits.gather(1, tokens.reshape(-1, 1)).squeeze(1)
    loss = (torch.logsumexp(logits.float(), -1) - target.float()).mean()
    return {"loss": loss}


def train_one(args, batch: int, show_profile: bool) -> None:
    """Time bare training steps (model, AdamW, clipping; no engine) at one batch size."""
    import torch

    torch.manual_seed(0)
    model = hsv_model(args.preset, args.device, **({} if args.dropout is None else {"dropout": args.dropout})).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=args.device == "cuda")
    run = model if args.loss == "model" else (lambda batch: lse_loss(model, batch))
    fwd = torch.compile(run, mode=args.compile_mode) if args.compile else run
    tokens = torch.randint(0, 8193, (batch, 32, 32), device=args.device)

    def step() -> None:
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.device == "cuda"), _attention(args):
            loss = fwd({"tokens": tokens})["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = time.perf_counter()
    for _ in range(3):  # compilation and allocator warm-up
        step()
    _sync(args.device)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    _sync(args.device)
    dt = (time.perf_counter() - t) / args.steps
    tok_s = batch * 1024 / dt
    extra = ""
    if args.device == "cuda":
        extra = (f", MFU {tok_s * model.flops_per_token() / 989e12:.1%} of 989 TFLOP/s, "
                 f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    compiled = f", compiled ({args.compile_mode})" if args.compile else ""
    print(f"bare train step, {args.preset}, batch {batch}, dropout {model.config.dropout}, attention {args.attention}, "
          f"loss {args.loss}{compiled}: "
          f"{dt * 1e3:.1f} ms/step, {tok_s:,.0f} tokens/s{extra} (warm-up {warm:.0f} s)", flush=True)
    if show_profile and args.rows:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(3):
                step()
            _sync(args.device)
        print(_table(prof, args.device, args.rows), flush=True)


def train_steps(args) -> None:
    import torch

    for i, batch in enumerate(args.batches):
        train_one(args, batch, show_profile=i == 0)
        if args.device == "cuda":  # each batch size starts clean: no shared compile cache or memory peak
            torch._dynamo.reset()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()


def attention_backends(args) -> None:
    """Time one decoding pass of bare attention per SDPA backend: a new key length at every step.

    The test of the suspected cause of the GPU decoding stall: cuDNN attention plans each new
    sequence length afresh (``generate`` now keeps cuDNN out of decoding). Each backend runs the
    1,024 lengths twice; the second pass shows what a plan cache would save.
    """
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    n, heads, dim, T = args.sample_batch, 8, 64, args.attn_len
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    q = torch.randn(n, heads, 1, dim, device=args.device, dtype=dtype)
    kv = torch.randn(2, n, heads, T, dim, device=args.device, dtype=dtype)
    backends = {"default": None, "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    for name, backend in backends.items():
        for rep in ("first pass", "second pass"):
            try:
                with sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext():
                    _sync(args.device)
                    t = time.perf_counter()
                    for L in range(1, T + 1):
                        F.scaled_dot_product_attention(q, kv[0, :, :, :L], kv[1, :, :, :L])
                    _sync(args.device)
            except RuntimeError as e:  # a backend this device or dtype lacks
                print(f"sdpa decode pass, {name}: unavailable ({str(e).splitlines()[0][:80]})", flush=True)
                break
            dt = time.perf_counter() - t
            print(f"sdpa decode pass, batch {n}, {heads} heads x {dim}, lengths 1..{T}, {name}, {rep}: "
                  f"{dt:.3f} s ({dt / T * 1e3:.3f} ms/step)", flush=True)


def _kernels(prof) -> int:
    """How many GPU kernels a profile saw (each launch once)."""
    from torch.autograd import DeviceType

    return sum(e.count for e in prof.key_averages() if e.device_type == DeviceType.CUDA)


def attention_at_lengths(args) -> None:
    """One layer's decoding attention at fixed key lengths, per backend: what a CUDA-graph step pays.

    Timed over many calls with CUDA events, so host launch costs do not count. ``flash`` attends to
    exactly the filled slots (no mask, as the growing cache does); ``efficient`` and ``math`` attend
    to a whole bucket with an additive mask, as the fixed-shape steps do. GB/s counts the keys and
    values read."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if args.device != "cuda":
        return
    heads, dim, T = 8, 64, 1024
    for n in args.attn_batches:
        q = torch.randn(n, heads, 1, dim, device="cuda", dtype=torch.bfloat16)
        kv = torch.randn(2, n, heads, T, dim, device="cuda", dtype=torch.bfloat16)
        for L in (128, 512, 1024):
            bias = torch.zeros(1, 1, 1, L, device="cuda", dtype=torch.bfloat16)
            bias[..., L // 2 :] = float("-inf")  # half the bucket still unfilled
            for name, backend, mask in (("flash", SDPBackend.FLASH_ATTENTION, None),
                                        ("efficient", SDPBackend.EFFICIENT_ATTENTION, bias),
                                        ("math", SDPBackend.MATH, bias)):
                k, v = kv[0, :, :, :L], kv[1, :, :, :L]
                with sdpa_kernel([backend]):
                    for _ in range(3):
                        F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    for _ in range(100):
                        F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                    end.record()
                    torch.cuda.synchronize()
                us = start.elapsed_time(end) * 10  # ms per 100 calls -> us per call
                gbs = 2 * n * heads * L * dim * 2 / (us * 1e-6) / 1e9
                print(f"decode attention, batch {n}, {heads} heads x {dim}, key length {L}, {name}: "
                      f"{us:.1f} us/call, {gbs:,.0f} GB/s of keys and values", flush=True)


def decode_steps(args) -> None:
    """Time each decoding path for ``--sample-batch`` images, then profile one run of the fixed-shape
    steps op by op (not captured, so every kernel shows) and count the kernels of a step."""
    import torch

    from artforge_hsv.decoding import StaticDecoder

    model = hsv_model(args.preset, args.device)
    n = args.sample_batch
    rows = [("KV cache, step by step", {"static": False}), ("recompute the prefix", {"use_cache": False})]
    steps = "CUDA graphs" if args.device == "cuda" else "fixed-shape steps"
    rows += [(f"KV cache, {steps}, bucket {b}", {"static": True, "bucket": b}) for b in args.buckets]
    if args.compile_decode:
        rows += [(f"KV cache, {steps}, compiled, bucket {b}", {"compile": True, "bucket": b}) for b in args.buckets]
    times = {}
    for name, options in rows:
        if options.get("compile"):  # the first call at this batch compiles; the timed calls reuse it
            t = time.perf_counter()
            model.generate(n, generator=torch.Generator(torch.device(args.device)).manual_seed(0), **options)
            _sync(args.device)
            print(f"first call with compile=True, bucket {options['bucket']}: {time.perf_counter() - t:.1f} s",
                  flush=True)
        times[name] = dt = generate_seconds(model, n, args.device, **options)
        ratio = f", {times['recompute the prefix'] / dt:.1f}x faster than recomputing" if len(times) > 2 else ""
        print(f"generate {n} x 1024 tokens, {args.preset}, {name}, attention {args.decode_attention}: {dt:.2f} s "
              f"({dt / 1024 * 1e3:.3f} ms/step){ratio}", flush=True)
    if not args.rows:
        return
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    g = torch.Generator(torch.device(args.device)).manual_seed(0)
    capture = StaticDecoder._capture
    StaticDecoder._capture = lambda self, buckets: None  # run the steps as plain kernels the profiler can see
    try:
        with profile(activities=acts) as prof:
            model.generate(n, generator=g, static=True, bucket=args.buckets[0])
            _sync(args.device)
    finally:
        StaticDecoder._capture = capture
    print(_table(prof, args.device, args.rows), flush=True)
    if args.device == "cuda":
        print(f"fixed-shape steps, bucket {args.buckets[0]}: {_kernels(prof) / 1023:.0f} GPU kernels per token "
              "(prefill included)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="base")
    ap.add_argument("--batch", dest="batches", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per batch size")
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--dropout", type=float, help="override the preset's dropout in the training steps")
    ap.add_argument("--attention", choices=["default", "flash", "efficient", "cudnn"], default="default",
                    help="SDPA backend for the training steps")
    ap.add_argument("--attn-len", type=int, default=1024, help="longest key length in the attention test")
    ap.add_argument("--attn-batch", dest="attn_batches", type=int, nargs="+", default=[64, 256],
                    help="batches for the fixed-length attention timing")
    ap.add_argument("--decode-attention", choices=["default", "math", "efficient"], default="default",
                    help="SDPA backends generate may use (default: any but cuDNN)")
    ap.add_argument("--bucket", dest="buckets", type=int, nargs="+", default=[128, 1024],
                    help="length buckets of the CUDA-graph decoding to time (1024: the whole cache every step)")
    ap.add_argument("--compile-decode", action="store_true",
                    help="also time the decoding with torch.compile'd steps (generate(compile=True))")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode for the training steps")
    ap.add_argument("--loss", choices=["model", "lse"], default="model",
                    help="the model's cross-entropy, or the same loss as logsumexp minus the target logit")
    ap.add_argument("--rows", type=int, default=15)
    ap.add_argument("--only", choices=["train", "decode", "attention", "attention-lengths"])
    args = ap.parse_args()
    if args.device == "cpu":
        args.compile = False
    if args.decode_attention != "default":  # swap the backends generate decodes with
        from torch.nn.attention import SDPBackend, sdpa_kernel

        import artforge_hsv.model

        backend = {"math": SDPBackend.MATH, "efficient": SDPBackend.EFFICIENT_ATTENTION}[args.decode_attention]
        artforge_hsv.model.decoding_attention = lambda device: sdpa_kernel([backend])
    if args.only in (None, "attention"):
        attention_backends(args)
    if args.only in (None, "attention-lengths"):
        attention_at_lengths(args)
    if args.only in (None, "train"):
        train_steps(args)
    if args.only in (None, "decode"):
        decode_steps(args)


if __name__ == "__main__":
    main()
