"""Operators in one fixed-shape decoding step of the hsv-transformer, counted at PyTorch's dispatcher.

A stand-in, on any machine, for the GPU kernels a CUDA-graph step replays: decoding a few dozen
images is bound by how many small kernels each token takes, not by arithmetic. Views are not
counted (they launch nothing; `_unsafe_view` included). It runs the `base` preset's step on the
CPU with bf16 autocast, as decoding runs on CUDA; CPU autocast casts like CUDA's for these
operators, but a GPU may still split or fuse some of them.

    python benchmarks/decode_ops.py
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hsv_model import hsv_model  # noqa: E402


def count_step(preset: str = "base", n: int = 4, bucket: int = 128) -> Counter:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from artforge_hsv.decoding import StaticDecoder

    ops: Counter = Counter()

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            views = ("detach", "alias", "lift_fresh", "_unsafe_view")
            if not func.is_view and func.overloadpacket.__name__ not in views:
                ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    model = hsv_model(preset, "cpu")._decoding_copy(torch.bfloat16)
    T = model.H * model.W
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        cache = model._new_cache(n, "cpu", torch.bfloat16)
        dec = StaticDecoder(model, cache, torch.zeros(n, T, dtype=torch.long), 1, 1.0, None, None, bucket, False)
        dec.pos.fill_(5)
        with Count():
            torch.rand(dec.noise.shape, out=dec.noise)  # the host's one call besides the step
            dec._body(dec.lengths[0])
    return ops


def main() -> None:
    ops = count_step()
    print(f"operators per decoding step (base, bf16, sampling at temperature 1): {sum(ops.values())}")
    print(", ".join(f"{k} {v}" for k, v in ops.most_common()))


if __name__ == "__main__":
    main()
