"""hsv-transformer: a decoder-only transformer over raster-order HSV tokens.

Input slot ``i`` holds token ``i-1`` (a start token at slot 0) plus the row and column
embeddings of pixel ``i``, the pixel it predicts. Pre-norm blocks, causal
``scaled_dot_product_attention`` (flash kernels on GPU), tied input/output embeddings.
Sampling uses a key/value cache; ``complete`` keeps the top rows of an image and generates the rest.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from artforge.augment import augment
from artforge.errors import ArtforgeError
from artforge.models import ArtModel, DataInfo, OnnxModule


@dataclass
class HSVTransformerConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1
    bias: bool = False
    flip: bool = True  # random horizontal flips while training


class SelfAttention(nn.Module):
    def __init__(self, c: HSVTransformerConfig):
        super().__init__()
        self.n_head, self.dropout = c.n_head, c.dropout
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def _heads(self, x: torch.Tensor):
        B, L, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        return [t.view(B, L, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        B, _, L, _ = y.shape
        return self.drop(self.proj(y.transpose(1, 2).reshape(B, L, -1)))

    def forward(self, x: torch.Tensor, cache: dict | None = None, pos: int = 0) -> torch.Tensor:
        q, k, v = self._heads(x)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)
            return self._out(y)
        L = q.shape[2]
        cache["k"][:, :, pos : pos + L] = k
        cache["v"][:, :, pos : pos + L] = v
        K, V = cache["k"][:, :, : pos + L], cache["v"][:, :, : pos + L]
        if L == 1:
            y = F.scaled_dot_product_attention(q, K, V)
        else:  # a block of new tokens: each sees the cache and the block up to itself
            mask = torch.ones(L, pos + L, dtype=torch.bool, device=x.device).tril(diagonal=pos)
            y = F.scaled_dot_product_attention(q, K, V, attn_mask=mask)
        return self._out(y)

    def forward_static(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor,
                       seen: torch.Tensor) -> torch.Tensor:
        """One token per row, written in place at ``pos`` (a 1-element tensor) into the full-size cache,
        attending to the ``seen`` slots: every shape is fixed, so a CUDA graph can replay it."""
        q, k, v = self._heads(x)
        k_cache.index_copy_(2, pos, k.to(k_cache.dtype))
        v_cache.index_copy_(2, pos, v.to(v_cache.dtype))
        return self._out(F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=seen))

    def forward_fixed(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor):
        """One token with a fixed-size cache (B, nh, T, hd) updated functionally (ONNX-friendly)."""
        q, k, v = self._heads(x)
        T = k_cache.shape[2]
        slot = (torch.arange(T, device=x.device) == pos).view(1, 1, T, 1)
        k_cache = torch.where(slot, k, k_cache)
        v_cache = torch.where(slot, v, v_cache)
        seen = (torch.arange(T, device=x.device) <= pos).view(1, 1, 1, T)
        y = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=seen)
        return self._out(y), k_cache, v_cache


class Block(nn.Module):
    def __init__(self, c: HSVTransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = SelfAttention(c)
        self.ln2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = nn.Sequential(
            nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias), nn.GELU(),
            nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias), nn.Dropout(c.dropout),
        )

    def forward(self, x, cache=None, pos=0):
        x = x + self.attn(self.ln1(x), cache, pos)
        return x + self.mlp(self.ln2(x))

    def forward_static(self, x, k_cache, v_cache, pos, seen):
        x = x + self.attn.forward_static(self.ln1(x), k_cache, v_cache, pos, seen)
        return x + self.mlp(self.ln2(x))

    def forward_fixed(self, x, k_cache, v_cache, pos):
        a, k_cache, v_cache = self.attn.forward_fixed(self.ln1(x), k_cache, v_cache, pos)
        x = x + a
        return x + self.mlp(self.ln2(x)), k_cache, v_cache


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
         top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """(B, V) logits -> (B,) tokens; temperature 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
    # The exponential race (argmax of p / E, E ~ Exp(1)) draws from probs exactly like
    # torch.multinomial, without the host-side validity check that multinomial syncs on each call.
    # E = -log U with U in [0, 1) is never 0 (so p = 0 stays 0), and on a CPU it is 4x faster than
    # exponential_().
    race = torch.rand(probs.shape, generator=generator, device=probs.device).log_().neg_()
    return (probs / race).argmax(-1)


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


class _EagerStep:
    """Fixed-shape decoding steps run op by op (what the CUDA graph replays; used off CUDA and in tests)."""

    def __init__(self, model: HSVTransformer, cache: list[dict], n: int):
        device = cache[0]["k"].device
        self.model, self.cache = model, cache
        self.tok = torch.zeros(n, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)

    def __call__(self, tok: torch.Tensor, pos: int) -> torch.Tensor:
        self.tok.copy_(tok[:, None])
        self.pos.fill_(pos)
        return self._run()

    def _run(self) -> torch.Tensor:
        return self.model._static_step(self.tok, self.cache, self.pos)


class _GraphStep(_EagerStep):
    """One fixed-shape decoding step captured as a CUDA graph; each call refills the inputs and replays it.

    The logits it returns live in the graph's memory and are overwritten by the next call.
    """

    def __init__(self, model: HSVTransformer, cache: list[dict], n: int):
        super().__init__(model, cache, n)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture: kernel selection, allocator
            for _ in range(2):
                super()._run()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = model._static_step(self.tok, cache, self.pos)

    def _run(self) -> torch.Tensor:
        self.graph.replay()
        return self.logits


class HSVTransformer(ArtModel):
    name = "hsv-transformer"
    description = "Decoder-only pixel transformer over HSV tokens: generation and image completion"
    Config = HSVTransformerConfig
    codecs = ("hsv",)
    presets = {
        "tiny": {"n_layer": 2, "n_head": 4, "n_embd": 64, "dropout": 0.0},
        "small": {"n_layer": 4, "n_head": 4, "n_embd": 256, "dropout": 0.1},
        "base": {"n_layer": 8, "n_head": 8, "n_embd": 512, "dropout": 0.1},
    }
    train_defaults = {"lr": 1e-3, "batch_size": 32, "weight_decay": 0.1, "beta2": 0.95, "grad_clip": 1.0}
    onnx_sampler = "artforge_hsv.onnx_sampler:sample"

    def __init__(self, config: HSVTransformerConfig, info: DataInfo):
        super().__init__(config, info)
        if len(info.token_shape) != 2:
            raise ArtforgeError(f"hsv-transformer needs 2-D token grids, got shape {info.token_shape}")
        if config.n_embd % config.n_head:
            raise ArtforgeError(f"n_embd {config.n_embd} must be a multiple of n_head {config.n_head}")
        self.H, self.W = info.token_shape
        self.vocab = info.vocab_size
        self.start = info.vocab_size  # one extra input-only token
        c = config
        self.tok_emb = nn.Embedding(self.vocab + 1, c.n_embd)
        self.row_emb = nn.Embedding(self.H, c.n_embd)
        self.col_emb = nn.Embedding(self.W, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    # -- core -----------------------------------------------------------------------------------
    def _embed(self, inputs: torch.Tensor, pos0: int | torch.Tensor = 0) -> torch.Tensor:
        L = inputs.shape[1]
        pos = torch.arange(L, device=inputs.device) + pos0
        return self.drop(self.tok_emb(inputs) + self.row_emb(pos // self.W) + self.col_emb(pos % self.W))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.ln_f(x), self.tok_emb.weight[: self.vocab])  # tied weights

    def logits(self, inputs: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Full-sequence logits: inputs (B, L) start token + tokens -> (B, L, vocab) (or (B, vocab))."""
        x = self._embed(inputs)
        for block in self.blocks:
            x = block(x)
        return self._head(x[:, -1]) if last_only else self._head(x)

    def _inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        flat = tokens.reshape(tokens.shape[0], -1)
        start = torch.full_like(flat[:, :1], self.start)
        return torch.cat([start, flat[:, :-1]], 1)

    def forward(self, batch: dict[str, torch.Tensor], phase: str = "main") -> dict[str, torch.Tensor]:
        tokens = batch["tokens"]
        if self.training and self.config.flip:
            tokens = augment(tokens, flip=True)
        logits = self.logits(self._inputs(tokens))
        loss = F.cross_entropy(logits.reshape(-1, self.vocab).float(), tokens.reshape(-1))
        return {"loss": loss, "bits_per_pixel": loss.detach() / math.log(2)}

    def flops_per_token(self) -> float:
        n = sum(p.numel() for p in self.parameters()) - self.row_emb.weight.numel() - self.col_emb.weight.numel()
        c = self.config
        return 6 * n + 12 * c.n_layer * c.n_embd * self.H * self.W

    # -- sampling -------------------------------------------------------------------------------
    def _new_cache(self, B: int, device, dtype) -> list[dict]:
        c = self.config
        T = self.H * self.W
        shape = (B, c.n_head, T, c.n_embd // c.n_head)
        return [{"k": torch.zeros(shape, device=device, dtype=dtype), "v": torch.zeros(shape, device=device,
                                                                                      dtype=dtype)}
                for _ in self.blocks]

    def _step(self, inputs: torch.Tensor, cache: list[dict], pos: int) -> torch.Tensor:
        x = self._embed(inputs, pos)
        for block, kv in zip(self.blocks, cache, strict=True):
            x = block(x, kv, pos)
        return self._head(x[:, -1])

    def _static_step(self, tok: torch.Tensor, cache: list[dict], pos: torch.Tensor) -> torch.Tensor:
        """``_step`` for one token at a position held in a tensor, with fixed shapes throughout."""
        x = self._embed(tok, pos)
        T = cache[0]["k"].shape[2]
        seen = (torch.arange(T, device=tok.device) <= pos).view(1, 1, 1, T)
        for block, kv in zip(self.blocks, cache, strict=True):
            x = block.forward_static(x, kv["k"], kv["v"], pos, seen)
        return self._head(x[:, -1])

    @torch.no_grad()
    def generate(self, n: int, prompt: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 use_cache: bool = True, static: bool | None = None) -> torch.Tensor:
        """Generate (n, H, W) tokens; ``prompt`` (n, P) fixes the first P tokens in raster order.

        ``static`` decodes with fixed-shape steps over the full-size cache (attention masked to the
        filled slots) and, on CUDA, captures one step as a CUDA graph and replays it per token, so
        the host launches one graph instead of every kernel of every layer. ``None`` picks it on CUDA
        for up to 128 images: on an H100 (``base``, 32x32) 64 images took 1.24 s with the graph and
        3.61 s without, while at 256 the full-length attention made it slower (3.32 s vs 3.03 s).
        """
        device = self.tok_emb.weight.device
        if static is None:
            static = use_cache and device.type == "cuda" and n <= 128
        T = self.H * self.W
        out = torch.zeros(n, T, dtype=torch.long, device=device)
        P = 0 if prompt is None else prompt.shape[1]
        if P:
            out[:, :P] = prompt
        if P >= T:
            return out.view(n, self.H, self.W)
        seq = torch.cat([torch.full((n, 1), self.start, dtype=torch.long, device=device), out[:, :P]], 1)
        with decoding_attention(device):
            self._decode(out, seq, P, generator, temperature, top_k, top_p, use_cache, static)
        return out.view(n, self.H, self.W)

    def _decode(self, out: torch.Tensor, seq: torch.Tensor, P: int, generator, temperature: float,
                top_k: int | None, top_p: float | None, use_cache: bool, static: bool) -> None:
        """Fill ``out[:, P:]`` in place, one token per step; ``seq`` is the start token and the prompt."""
        n, T, device = out.shape[0], out.shape[1], out.device
        if use_cache:
            dtype = torch.bfloat16 if device.type == "cuda" and torch.is_autocast_enabled("cuda") else \
                self.tok_emb.weight.dtype
            cache = self._new_cache(n, device, dtype)
            step = None
            if static and P + 1 < T:  # built before the prefill: its warm-up writes slot 0 of the cache
                step = _GraphStep(self, cache, n) if device.type == "cuda" else _EagerStep(self, cache, n)
            logits = self._step(seq, cache, 0)  # prefill: start token + prompt
            for pos in range(P, T):
                tok = pick(logits, temperature, generator, top_k, top_p)
                out[:, pos] = tok
                if pos + 1 < T:
                    logits = step(tok, pos + 1) if step is not None else self._step(tok[:, None], cache, pos + 1)
        else:  # recompute the whole prefix each step (the reference the cache must match)
            for pos in range(P, T):
                logits = self.logits(torch.cat([seq, out[:, P:pos]], 1), last_only=True)
                out[:, pos] = pick(logits, temperature, generator, top_k, top_p)

    @torch.no_grad()
    def sample(self, n, generator=None, temperature=1.0, labels=None, top_k=None, top_p=None, **_: Any):
        if labels is not None:
            raise ArtforgeError("hsv-transformer is unconditional; drop --label")
        return self.generate(n, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p)

    @torch.no_grad()
    def complete(self, tokens: torch.Tensor, keep_rows: int, n: int = 1, generator=None, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
        """(B, H, W) images -> (B, n, H, W): the top ``keep_rows`` rows kept, the rest generated."""
        if not 0 <= keep_rows <= self.H:
            raise ArtforgeError(f"--keep-rows must be between 0 and {self.H}, got {keep_rows}")
        B = tokens.shape[0]
        prompt = tokens[:, :keep_rows].reshape(B, -1).repeat_interleave(n, 0)
        out = self.generate(B * n, prompt=prompt, generator=generator, temperature=temperature, top_k=top_k,
                            top_p=top_p)
        return out.view(B, n, self.H, self.W)

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]], codec: Any) -> dict[str, float]:
        from PIL import Image

        nll, correct, count, png_bits, webp_bits, images = 0.0, 0, 0, 0, 0, 0
        for batch in batches:
            tokens = batch["tokens"]
            logits = self.logits(self._inputs(tokens)).float()
            flat = tokens.reshape(-1)
            nll += F.cross_entropy(logits.reshape(-1, self.vocab), flat, reduction="sum").item()
            correct += (logits.argmax(-1).reshape(-1) == flat).sum().item()
            count += flat.numel()
            for img in codec.decode(tokens.cpu().numpy()):
                for fmt, kw in (("PNG", {"optimize": True, "compress_level": 9}),
                                ("WEBP", {"lossless": True, "quality": 100, "method": 6})):
                    buf = io.BytesIO()
                    Image.fromarray(img, "RGBA").save(buf, format=fmt, **kw)
                    if fmt == "PNG":
                        png_bits += 8 * buf.tell()
                    else:
                        webp_bits += 8 * buf.tell()
                images += 1
        pixels_per_token = 1.0
        bpt = nll / count / math.log(2)
        return {
            "loss": nll / count,
            "bits_per_token": bpt,
            "bits_per_pixel": bpt / pixels_per_token,
            "next_token_accuracy": correct / count,
            "png_bits_per_pixel": png_bits / count,
            "webp_lossless_bits_per_pixel": webp_bits / count,
            "ratio_to_webp": (bpt / pixels_per_token) / (webp_bits / count) if webp_bits else float("nan"),
            "images": float(images),
        }

    # -- export ---------------------------------------------------------------------------------
    def onnx_modules(self) -> list[OnnxModule]:
        T = self.H * self.W
        c = self.config
        gen = torch.Generator().manual_seed(0)
        # batch sizes unlike any model dimension, so tracing cannot mistake one for the other
        seq = torch.randint(0, self.vocab, (5, min(T, 16)), generator=gen)
        check = torch.randint(0, self.vocab, (3, min(T, 11)), generator=gen)
        step = _Step(self).eval()
        hd = c.n_embd // c.n_head
        kv = torch.zeros(c.n_layer, 5, c.n_head, T, hd)
        kv3 = torch.randn(c.n_layer, 3, c.n_head, T, hd, generator=gen) * 0.1
        return [
            OnnxModule("logits", _Logits(self).eval(), (seq,), ["tokens"], ["logits"],
                       {"tokens": {0: "batch", 1: "length"}, "logits": {0: "batch", 1: "length"}},
                       check_inputs=(check,)),
            OnnxModule("step", step, (seq[:, :1], torch.tensor(0), kv, kv.clone()),
                       ["token", "pos", "k_cache", "v_cache"], ["logits", "k_cache_out", "v_cache_out"],
                       {"token": {0: "batch"}, "k_cache": {1: "batch"}, "v_cache": {1: "batch"},
                        "logits": {0: "batch"}, "k_cache_out": {1: "batch"}, "v_cache_out": {1: "batch"}},
                       check_inputs=(check[:, :1], torch.tensor(5), kv3, kv3.flip(0))),
        ]

    def onnx_manifest(self) -> dict:
        c = self.config
        return {"height": self.H, "width": self.W, "start_token": self.start, "n_layer": c.n_layer,
                "n_head": c.n_head, "head_dim": c.n_embd // c.n_head}


class _Logits(nn.Module):
    def __init__(self, m: HSVTransformer):
        super().__init__()
        self.m = m

    def forward(self, tokens):
        return self.m.logits(tokens)


class _Step(nn.Module):
    """One decoding step with the whole KV cache as explicit, fixed-size inputs and outputs."""

    def __init__(self, m: HSVTransformer):
        super().__init__()
        self.m = m

    def forward(self, token, pos, k_cache, v_cache):
        m = self.m
        x = m.tok_emb(token) + m.row_emb(pos // m.W) + m.col_emb(pos % m.W)
        ks, vs = [], []
        for i, block in enumerate(m.blocks):
            x, k, v = block.forward_fixed(x, k_cache[i], v_cache[i], pos)
            ks.append(k)
            vs.append(v)
        return m._head(x[:, -1]), torch.stack(ks), torch.stack(vs)

