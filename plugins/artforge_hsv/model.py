"""hsv-transformer: a decoder-only transformer over raster-order HSV tokens.

Input slot ``i`` holds token ``i-1`` (a start token at slot 0) plus the row and column
embeddings of pixel ``i``, the pixel it predicts. Pre-norm blocks, causal
``scaled_dot_product_attention`` (flash kernels on GPU), tied input/output embeddings.
Sampling uses a key/value cache; ``complete`` keeps the top rows of an image and generates the rest.
"""

from __future__ import annotations

import copy
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
from artforge_hsv.decoding import StaticDecoder, decoding_attention, filter_logits, pick

CPU_CHUNK = 64  # sequences decoded together on a CPU (generate): bounds memory, costs no speed there

__all__ = ["HSVTransformer", "HSVTransformerConfig", "filter_logits", "pick"]


@dataclass
class HSVTransformerConfig:
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block (n_embd must divide by it)
    n_embd: int = 128  # width of the token embeddings and the residual stream
    dropout: float = 0.1  # dropout on attention, MLP outputs and embeddings while training
    bias: bool = False  # biases in the linear layers and layer norms
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

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None, pos: int = 0) -> torch.Tensor:
        """``cache``: this layer's keys and values, (2, B, n_head, T, head_dim), filled up to ``pos``."""
        q, k, v = self._heads(x)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)
            return self._out(y)
        L = q.shape[2]
        cache[0, :, :, pos : pos + L] = k
        cache[1, :, :, pos : pos + L] = v
        K, V = cache[0, :, :, : pos + L], cache[1, :, :, : pos + L]
        if L == 1:
            y = F.scaled_dot_product_attention(q, K, V)
        else:  # a block of new tokens: each sees the cache and the block up to itself
            mask = torch.ones(L, pos + L, dtype=torch.bool, device=x.device).tril(diagonal=pos)
            y = F.scaled_dot_product_attention(q, K, V, attn_mask=mask)
        return self._out(y)

    def forward_static(self, x: torch.Tensor, cache: torch.Tensor, pos: torch.Tensor,
                       bias: torch.Tensor) -> torch.Tensor:
        """One token per row, its key and value written in place (one copy for both) at ``pos`` (a
        1-element tensor) into the full-size cache, attending to its first ``bias.shape[-1]`` slots
        (``bias``: 0 where filled, -inf after ``pos``): every shape is fixed, so a CUDA graph can replay it."""
        B, _, C = x.shape
        qkv = self.qkv(x)
        q = qkv[..., :C].view(B, 1, self.n_head, C // self.n_head).transpose(1, 2)
        kv = qkv[..., C:].view(B, 1, 2, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        cache.index_copy_(3, pos, kv.to(cache.dtype))
        L = bias.shape[-1]
        return self._out(F.scaled_dot_product_attention(q, cache[0, :, :, :L], cache[1, :, :, :L], attn_mask=bias))

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

    def forward_static(self, x, cache, pos, bias):
        x = x + self.attn.forward_static(self.ln1(x), cache, pos, bias)
        return x + self.mlp(self.ln2(x))

    def forward_fixed(self, x, k_cache, v_cache, pos):
        a, k_cache, v_cache = self.attn.forward_fixed(self.ln1(x), k_cache, v_cache, pos)
        x = x + a
        return x + self.mlp(self.ln2(x)), k_cache, v_cache


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
        for key in ("n_layer", "n_head", "n_embd"):
            if getattr(config, key) < 1:
                raise ArtforgeError(f"hsv-transformer: {key} must be at least 1, got {getattr(config, key)}")
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
        self._head_weight: torch.Tensor | None = None  # set only in a decoding copy (`_decoding_copy`)
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
    def _positions(self, pos: torch.Tensor) -> torch.Tensor:
        """(L,) raster positions -> (L, n_embd): row plus column embedding."""
        return self.row_emb(pos // self.W) + self.col_emb(pos % self.W)

    def _embed(self, inputs: torch.Tensor, pos0: int | torch.Tensor = 0) -> torch.Tensor:
        L = inputs.shape[1]
        return self.drop(self.tok_emb(inputs) + self._positions(torch.arange(L, device=inputs.device) + pos0))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        w = self._head_weight if self._head_weight is not None else self.tok_emb.weight[: self.vocab]  # tied
        return F.linear(self.ln_f(x), w)

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
    def _new_cache(self, B: int, device, dtype) -> list[torch.Tensor]:
        c = self.config
        T = self.H * self.W
        return [torch.zeros(2, B, c.n_head, T, c.n_embd // c.n_head, device=device, dtype=dtype)
                for _ in self.blocks]  # per layer: keys and values

    def _step(self, inputs: torch.Tensor, cache: list[torch.Tensor], pos: int) -> torch.Tensor:
        x = self._embed(inputs, pos)
        for block, kv in zip(self.blocks, cache, strict=True):
            x = block(x, kv, pos)
        return self._head(x[:, -1])

    def _static_step(self, tok: torch.Tensor, cache: list[torch.Tensor], pos: torch.Tensor, length: int,
                     positions: torch.Tensor | None = None) -> torch.Tensor:
        """``_step`` for one token at a position held in a tensor, attending to the cache's first ``length``
        slots: fixed shapes throughout. ``positions``: ``_positions`` of every slot, computed once per
        decoding rather than in every step. The mask is built once here as an additive bias in the
        cache's dtype, which attention takes as is (a boolean one it would convert in every layer)."""
        where = positions.index_select(0, pos) if positions is not None else self._positions(pos)
        x = self.tok_emb(tok) + where
        bias = torch.zeros(length, dtype=cache[0].dtype, device=tok.device)
        bias = bias.masked_fill_(torch.arange(length, device=tok.device) > pos, float("-inf")).view(1, 1, 1, length)
        for block, kv in zip(self.blocks, cache, strict=True):
            x = block.forward_static(x, kv, pos, bias)
        return self._head(x[:, -1])

    def _decoding_copy(self, dtype: torch.dtype) -> HSVTransformer:
        """This model with its matrix weights (and a copy of the tied output weights) in ``dtype``.

        Under autocast a matmul with fp32 weights first casts them, in every layer of every decoding
        step; with the weights already in bf16 those casts go. The embeddings and norms stay as they
        are, so the numbers equal those of autocast over this model.
        """
        if dtype == self.tok_emb.weight.dtype:
            return self
        dm = copy.deepcopy(self)
        for m in dm.modules():
            if isinstance(m, nn.Linear):
                m.to(dtype)
        dm._head_weight = self.tok_emb.weight[: self.vocab].detach().to(dtype)
        return dm

    @torch.no_grad()
    def generate(self, n: int, prompt: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 use_cache: bool = True, static: bool | None = None, dtype: torch.dtype | None = None,
                 bucket: int = 128, compile: bool = False) -> torch.Tensor:
        """Generate (n, H, W) tokens; ``prompt`` (n, P) fixes the first P tokens in raster order.

        ``dtype``: the decoding precision; ``None`` is bf16 on CUDA (autocast, with the matrix weights
        cast once, see ``_decoding_copy``) and the model's own dtype elsewhere.

        ``static`` decodes with fixed-shape steps (``StaticDecoder``): the token is drawn and written
        inside the step, and attention reads the cache in buckets of ``bucket`` slots. On CUDA each
        bucket's step is a CUDA graph, replayed per token. ``None`` picks it on CUDA for up to 128
        images: on an H100 (``base``, 32x32, one full-length graph) 64 images took 1.24 s with the
        graph and 3.61 s without, while at 256 the full-length attention made it slower (3.32 s vs
        3.03 s). The buckets are meant to remove that cost (GPU figures owed, docs/benchmarks.md).

        ``compile`` runs each fixed-shape step through ``torch.compile`` (implies ``static``): fewer,
        fused kernels per step, for a one-off compilation of some seconds per process.
        """
        device = self.tok_emb.weight.device
        if bucket < 1:
            raise ArtforgeError(f"bucket must be at least 1, got {bucket}")
        if device.type == "cpu" and n > CPU_CHUNK:
            # Memory grows with the sequences decoded together (caches, logits, per-step draws: ~70 MB
            # each at `base`, 32x32), while a CPU gains nothing from more than a few dozen at once.
            # One generator runs through the chunks, so a seed still gives one result.
            parts = [self.generate(min(CPU_CHUNK, n - i), None if prompt is None else prompt[i : i + CPU_CHUNK],
                                   generator, temperature, top_k, top_p, use_cache, static, dtype, bucket, compile)
                     for i in range(0, n, CPU_CHUNK)]
            return torch.cat(parts)
        if compile and (static is False or not use_cache):
            raise ArtforgeError("compile needs the KV cache's fixed-shape steps (use_cache, static)")
        if static is None:
            static = compile or (use_cache and device.type == "cuda" and n <= 128)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else self.tok_emb.weight.dtype
        T = self.H * self.W
        out = torch.zeros(n, T, dtype=torch.long, device=device)
        P = 0 if prompt is None else prompt.shape[1]
        if P:
            out[:, :P] = prompt
        if P >= T:
            return out.view(n, self.H, self.W)
        seq = torch.cat([torch.full((n, 1), self.start, dtype=torch.long, device=device), out[:, :P]], 1)
        model = self._decoding_copy(dtype)
        with torch.autocast(device.type, dtype=dtype, enabled=model is not self), decoding_attention(device):
            model._decode(out, seq, P, generator, (temperature, top_k, top_p), use_cache, static, bucket, dtype,
                          compile)
        return out.view(n, self.H, self.W)

    def _decode(self, out: torch.Tensor, seq: torch.Tensor, P: int, generator, sampling: tuple,
                use_cache: bool, static: bool, bucket: int, dtype: torch.dtype, compile: bool) -> None:
        """Fill ``out[:, P:]`` in place, one token per step; ``seq`` is the start token and the prompt."""
        n, T, device = out.shape[0], out.shape[1], out.device
        temperature, top_k, top_p = sampling

        def draw(logits: torch.Tensor) -> torch.Tensor:
            return pick(logits, temperature, generator, top_k, top_p)

        if not use_cache:  # recompute the whole prefix each step (the reference the cache must match)
            for pos in range(P, T):
                out[:, pos] = draw(self.logits(torch.cat([seq, out[:, P:pos]], 1), last_only=True))
            return
        cache = self._new_cache(n, device, dtype)
        tok = draw(self._step(seq, cache, 0))  # prefill: start + prompt
        out[:, P] = tok
        if P + 1 >= T:
            return
        if static:
            StaticDecoder(self, cache, out, P + 1, *sampling, bucket=bucket, graphs=device.type == "cuda",
                          compile=compile).run(tok, generator)
            return
        for pos in range(P + 1, T):
            tok = draw(self._step(tok[:, None], cache, pos))
            out[:, pos] = tok

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
        # The figures are sums, so images go through in slices whose float32 logits stay near 256 MB:
        # a whole batch of 32x32 hsv544 images costs 34 MB of logits each (4 GB at 128 images).
        per_slice = max(1, (1 << 26) // (self.H * self.W * self.vocab))
        for batch in batches:
            for tokens in batch["tokens"].split(per_slice):
                logits = self.logits(self._inputs(tokens)).float()
                flat = tokens.reshape(-1)
                nll += F.cross_entropy(logits.reshape(-1, self.vocab), flat, reduction="sum").item()
                correct += (logits.argmax(-1).reshape(-1) == flat).sum().item()
                count += flat.numel()
                del logits
            tokens = batch["tokens"]
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
        x = m.tok_emb(token) + m._positions(pos)
        ks, vs = [], []
        for i, block in enumerate(m.blocks):
            x, k, v = block.forward_fixed(x, k_cache[i], v_cache[i], pos)
            ks.append(k)
            vs.append(v)
        return m._head(x[:, -1]), torch.stack(ks), torch.stack(vs)

