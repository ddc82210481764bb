"""Token-by-token decoding for hsv-transformer: the sampling rule and the fixed-shape steps a CUDA graph replays.

Generating a 32x32 image is 1,024 dependent steps. At a few dozen images a step is a few hundred
small kernels, so it costs kernel launches and reads of the key/value cache, not arithmetic.
``StaticDecoder`` gives every step fixed shapes so that on CUDA each step is captured once as a
CUDA graph and replayed. The model step, the draw and the write of the new token all happen inside
the graph, and the host makes two calls per token: fill the noise, replay. The cache is attended in
length buckets (the first 128 slots, the first 256, ...), so early steps read only the filled part
of the cache, not all of it. With ``compile`` the step's model and draw are one ``torch.compile``d
function: its fused kernels replace the step's many small ones (casts, norms, residual adds, the
sampling arithmetic), in the graph and op by op alike.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from artforge_hsv.model import HSVTransformer


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Mask all but the top-k tokens and/or the smallest set holding top-p of the probability."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the token that crosses top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def pick(logits: torch.Tensor, temperature: float, generator: torch.Generator | None,
         top_k: int | None = None, top_p: float | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """(B, V) logits -> (B,) tokens; temperature 0 is greedy.

    ``noise`` is the (B, V) uniform draw to use; without it one is drawn here, from the same call
    ``StaticDecoder`` makes, so a seeded generator gives every decoding path the same tokens.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
    if noise is None:
        noise = torch.rand(probs.shape, generator=generator, device=probs.device)
    # The exponential race (argmax of p / E, E ~ Exp(1)) draws from probs exactly like
    # torch.multinomial, without the host-side validity check that multinomial syncs on each call.
    # E = -log U with U in [0, 1) is never 0 (so p = 0 stays 0), and on a CPU it is 4x faster than
    # exponential_(). Out of place: a CUDA graph's warm-up runs this twice on the same noise.
    return (probs / noise.log().neg()).argmax(-1)


def decoding_attention(device: torch.device) -> contextlib.AbstractContextManager:
    """The attention backends for token-by-token decoding: on CUDA, any but cuDNN.

    cuDNN attention (which PyTorch may prefer on Hopper GPUs) builds an execution plan for every new
    sequence length, and decoding has a new key length at every step: a plan build per token costs
    more than the step itself. Flash and memory-efficient attention take any length as is.
    """
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def sample_step(model: HSVTransformer, tok: torch.Tensor, cache: list[torch.Tensor], pos: torch.Tensor,
                length: int, positions: torch.Tensor, noise: torch.Tensor | None, temperature: float,
                top_k: int | None, top_p: float | None) -> torch.Tensor:
    """One fixed-shape step and its draw: (n, 1) token ``pos-1`` -> (n,) token ``pos``; the caches'
    slot ``pos`` is written in place."""
    logits = model._static_step(tok, cache, pos, length, positions)
    return pick(logits, temperature, None, top_k, top_p, noise=noise)


@functools.cache
def compiled_sample_step() -> Any:
    """``sample_step`` compiled once per process. Everything it reads is an argument, so later calls,
    new decoding copies of the model included, reuse the compiled code: the first bucket length is
    compiled as is, the next one once more with the length symbolic, and that serves every bucket.
    Each new sampling setting (temperature, top-k, top-p) or dtype compiles once more; past
    torch._dynamo's recompile limit (8) the step runs uncompiled, with the same results."""
    return torch.compile(sample_step)


class StaticDecoder:
    """Fixed-shape decoding steps that sample in place, one CUDA graph per length bucket (op by op off CUDA).

    Step ``s`` embeds token ``s-1`` at slot ``s`` and writes the caches' slot ``s``. It attends to the
    first ``length`` slots of its bucket, with the slots after ``s`` masked. It draws token ``s`` from
    the noise the host has just filled, writes it to ``out[:, s]`` and moves ``pos`` on. Only the
    noise and the replay are left to the host. ``compile`` runs the step through
    ``compiled_sample_step``.
    """

    def __init__(self, model: HSVTransformer, cache: list[torch.Tensor], out: torch.Tensor, start: int,
                 temperature: float, top_k: int | None, top_p: float | None, bucket: int, graphs: bool,
                 compile: bool = False):
        n, T = out.shape
        device = out.device
        self.model, self.cache, self.out, self.start, self.bucket = model, cache, out, start, bucket
        self.sampling = (temperature, top_k, top_p)
        self.tok = torch.zeros(n, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.noise = torch.zeros(n, model.vocab, device=device) if temperature > 0 else None
        self.positions = model._positions(torch.arange(T, device=device))
        self.lengths = [min(T, (b + 1) * bucket) for b in range(math.ceil(T / bucket))]
        self.step = compiled_sample_step() if compile else sample_step
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        if graphs:
            # Streams and graphs are made on the current GPU; with the model on another one (--device
            # cuda:1 sets none) the capture would record none of the step's kernels.
            with torch.cuda.device(device):
                self._capture(range(start // bucket, len(self.lengths)))

    def _body(self, length: int) -> None:
        tok = self.step(self.model, self.tok, self.cache, self.pos, length, self.positions, self.noise,
                        *self.sampling)
        self.out.index_copy_(1, self.pos, tok[:, None])
        self.tok.copy_(tok[:, None])
        self.pos.add_(1)

    def _capture(self, buckets: range) -> None:
        # The warm-up runs write cache slots and tokens at positions >= start: decoding overwrites
        # each of them before anything reads it, so they do no harm.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # off the capture: kernel selection, cuBLAS workspaces, allocator
            for b in buckets:
                for _ in range(2):
                    self.pos.fill_(max(self.start, b * self.bucket))
                    self._body(self.lengths[b])
        torch.cuda.current_stream().wait_stream(side)
        # A capture stream of our own, on this GPU: torch.cuda.graph's default one is made once per
        # process, on whichever GPU was current at the first capture, and entering it makes that GPU
        # current again, so a model on another GPU would be captured on the wrong one after all
        capture = torch.cuda.Stream()
        pool = None
        for b in buckets:  # replayed one at a time, results copied into tensors we own: one memory pool
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool, stream=capture):
                self._body(self.lengths[b])
            pool = graph.pool() if pool is None else pool
            self.graphs[b] = graph

    def run(self, tok: torch.Tensor, generator: torch.Generator | None) -> None:
        """Fill ``out[:, start:]``; ``tok`` (n,) is token ``start-1``."""
        self.tok.copy_(tok[:, None])
        self.pos.fill_(self.start)
        for s in range(self.start, self.out.shape[1]):
            if self.noise is not None:
                torch.rand(self.noise.shape, generator=generator, out=self.noise)
            b = s // self.bucket
            if b in self.graphs:
                self.graphs[b].replay()
            else:
                self._body(self.lengths[b])
