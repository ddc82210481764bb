"""Encoders and decoders over palette-index grids, MLP and convolutional, optionally conditioned.

Inputs are token grids ``(B, H, W)``; the first layer is an embedding of each pixel's palette
index, which is exactly a linear layer on the one-hot map, without materialising it.
Decoders return logits ``(B, V, H, W)``: a softmax over the palette at every pixel.
Conditioning (``cond`` > 0) adds a learnt projection of the label vector inside every block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _groups(c: int) -> int:
    return math.gcd(8, c)



def conv_presets(**tiny_latent) -> dict[str, dict]:
    """The presets every convolutional palette model offers; ``tiny_latent`` sizes its tiny code."""
    return {"tiny": {"channels": (8, 8), "blocks": 1, **tiny_latent},
            "wide": {"channels": (64, 128, 128), "blocks": 2}}

class ResBlock(nn.Module):
    """Pre-norm residual block: GroupNorm, SiLU, 3x3 conv (+ label projection), twice."""

    def __init__(self, c: int, cond: int = 0):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c), c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c), c), nn.Conv2d(c, c, 3, padding=1)
        self.cond = nn.Linear(cond, c) if cond else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.cond is not None:
            h = h + self.cond(y)[:, :, None, None]
        return x + self.conv2(F.silu(self.norm2(h)))


class ConvEncoder(nn.Module):
    """tokens (B, H, W) -> (B, out, H / 2^(L-1), W / 2^(L-1)) with L = len(channels) levels."""

    def __init__(self, vocab: int, channels: tuple[int, ...], blocks: int, out: int, cond: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab, channels[0])
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, c in enumerate(channels):
            self.levels.append(nn.ModuleList(ResBlock(c, cond) for _ in range(blocks)))
            if i + 1 < len(channels):
                self.downs.append(nn.Conv2d(c, channels[i + 1], 4, stride=2, padding=1))
        self.norm = nn.GroupNorm(_groups(channels[-1]), channels[-1])
        self.head = nn.Conv2d(channels[-1], out, 1)

    def forward(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(tokens).permute(0, 3, 1, 2)
        for i, blocks in enumerate(self.levels):
            for b in blocks:
                x = b(x, y)
            if i < len(self.downs):
                x = self.downs[i](x)
        return self.head(F.silu(self.norm(x)))


class ConvDecoder(nn.Module):
    """latent (B, latent, h, w) -> logits (B, vocab, h * 2^(L-1), w * 2^(L-1))."""

    def __init__(self, vocab: int, channels: tuple[int, ...], blocks: int, latent: int, cond: int = 0):
        super().__init__()
        rev = list(reversed(channels))
        self.stem = nn.Conv2d(latent, rev[0], 3, padding=1)
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, c in enumerate(rev):
            self.levels.append(nn.ModuleList(ResBlock(c, cond) for _ in range(blocks)))
            if i + 1 < len(rev):
                self.ups.append(nn.Conv2d(c, rev[i + 1], 3, padding=1))
        self.norm = nn.GroupNorm(_groups(rev[-1]), rev[-1])
        self.head = nn.Conv2d(rev[-1], vocab, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(z)
        for i, blocks in enumerate(self.levels):
            for b in blocks:
                x = b(x, y)
            if i < len(self.ups):
                x = self.ups[i](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.head(F.silu(self.norm(x)))


def _dense(a: int, b: int) -> nn.Module:
    """Linear, LayerNorm, SiLU: the norm keeps wide one-hot fan-ins stable under Adam."""
    return nn.Sequential(nn.Linear(a, b), nn.LayerNorm(b), nn.SiLU())


class MLPEncoder(nn.Module):
    """tokens (B, H, W) -> (B, out): per-pixel colour embedding, flattened, then an MLP."""

    def __init__(self, vocab: int, shape: tuple[int, int], embed: int, hidden: tuple[int, ...], out: int,
                 cond: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        dims = [shape[0] * shape[1] * embed + cond, *hidden]
        self.layers = nn.ModuleList(_dense(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.head = nn.Linear(dims[-1], out)

    def forward(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(tokens).flatten(1)
        if y is not None:
            x = torch.cat([x, y], 1)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class MLPDecoder(nn.Module):
    """latent (B, latent) -> logits (B, vocab, H, W) through an MLP and a per-pixel palette head."""

    def __init__(self, vocab: int, shape: tuple[int, int], latent: int, hidden: tuple[int, ...], pixel: int,
                 cond: int = 0):
        super().__init__()
        self.shape, self.pixel = shape, pixel
        dims = [latent + cond, *reversed(hidden)]
        self.layers = nn.ModuleList(_dense(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.out = nn.Linear(dims[-1], shape[0] * shape[1] * pixel)
        self.head = nn.Conv2d(pixel, vocab, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = z if y is None else torch.cat([z, y], 1)
        for layer in self.layers:
            x = layer(x)
        x = self.out(x).unflatten(1, (self.pixel, *self.shape))
        return self.head(F.silu(x))
