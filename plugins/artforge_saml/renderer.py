"""The SAML renderer: layers of textured quads -> RGBA pixels, differentiable in torch.

Each layer's quad is drawn as two triangles (``lt rt lb`` and ``rb lb rt``), each mapping the
symbol's texture affinely, the way a GPU draws a four-corner sprite. Layers are composited with
"over", the first row in front. Input is either tokens (a LongTensor ``(B, L, 13)``, see
:mod:`artforge_saml.codec`) or the same layout in floats: then the output is differentiable in
the colours, opacities and corners (the symbol column is rounded: which texture a layer shows is
a discrete choice, not a gradient).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artforge_saml.samlfile import ALPHA_STEPS, MAX_SYMBOL
from artforge_saml.symbols import MARGIN, texture_table

OFFSET = 128  # coordinate tokens are value + 128


class SamlRenderer(nn.Module):
    """``softness``: edge widths (in symbol widths) to keep textures for; the first is used unless
    :meth:`premultiplied` is given ``blur`` (in pixels), which picks for each layer the texture
    whose edge is closest to ``blur`` pixels wide at that layer's size (used while fitting)."""

    def __init__(self, width: int = 192, height: int = 96, scale: int = 1, symbol_dir: str | None = None,
                 softness: float | tuple[float, ...] = 0.0):
        super().__init__()
        levels = tuple(softness) if isinstance(softness, tuple | list) else (softness,)
        tables = [texture_table(symbol_dir, s) for s in levels]
        index = tables[0][1]
        n = len(tables[0][0])
        self.register_buffer("textures", torch.from_numpy(np.concatenate([t for t, _ in tables])), persistent=False)
        self.register_buffer("levels", torch.tensor([max(s, 1e-4) for s in levels]).log(), persistent=False)
        # symbol token (id + 1) -> texture row at the first level; level k adds k * n
        rows = torch.full((MAX_SYMBOL + 2,), n - 1, dtype=torch.long)
        for sid, r in index.items():
            if sid <= MAX_SYMBOL:
                rows[sid + 1] = r
        self.register_buffer("rows", rows, persistent=False)
        self.per_level = n
        self.width, self.height, self.scale = width, height, scale
        xs = -width / 2 + (torch.arange(width * scale) + 0.5) / scale
        ys = -height / 2 + (torch.arange(height * scale) + 0.5) / scale
        self.register_buffer("px", xs.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("py", ys.view(1, 1, -1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, 13)`` -> ``(B, 4, H, W)`` straight RGBA in [0, 1]."""
        out = self.premultiplied(x)
        a = out[:, 3:]
        rgb = torch.where(a > 1e-6, out[:, :3] / a.clamp_min(1e-6), torch.zeros_like(out[:, :3]))
        return torch.cat([rgb.clamp(0, 1), a], 1)

    def premultiplied(self, x: torch.Tensor, blur: float | None = None,
                      mix: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``(B, L, 13)`` -> ``(B, 4, H, W)`` premultiplied RGBA (what losses should compare).

        ``mix`` ``(probs (B, L, K), symbol tokens (K,))`` draws each layer as the probability-weighted
        sum of those K symbols' coverages instead of its symbol column (differentiable in probs)."""
        if x.dim() != 3 or x.shape[-1] != 13:
            raise ValueError(f"SAML layers must be (B, L, 13), got {tuple(x.shape)}")
        hard = not x.is_floating_point()
        x = x.to(self.px.dtype)
        symbol = x[..., 0].round().long().clamp(0, MAX_SYMBOL + 1)
        rgb = x[..., 1:4] / 255
        alpha = (x[..., 4] / ALPHA_STEPS) * (symbol > 0)
        corners = (x[..., 5:] - OFFSET).view(*x.shape[:2], 4, 2)
        if hard:
            corners = corners.round()
        level = None
        if blur is not None and len(self.levels) > 1:
            size = _quad_size(corners.detach()) * self.scale  # pixels across the layer
            want = (blur / size.clamp_min(0.5)).log()
            level = (want[..., None] - self.levels).abs().argmin(-1)
        if mix is None:
            cover = self.coverage(corners, symbol, level)  # (B, L, H, W)
        else:
            probs, choices = mix
            cover = sum(probs[..., k, None, None] * self.coverage(corners, torch.full_like(symbol, int(t)), level)
                        for k, t in enumerate(choices.tolist()))
            alpha = x[..., 4] / ALPHA_STEPS
        a = cover * alpha[..., None, None]
        through = torch.cumprod(1 - a, 1)  # light passing each layer and all in front of it
        front = torch.cat([torch.ones_like(through[:, :1]), through[:, :-1]], 1)
        w = front * a
        out_rgb = torch.einsum("blhw,blc->bchw", w, rgb)
        return torch.cat([out_rgb, 1 - through[:, -1:]], 1)

    def coverage(self, corners: torch.Tensor, symbol: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
        """How much of each pixel each layer's symbol covers, ``(B, L, H, W)``."""
        lt, lb, rt, rb = corners.unbind(2)  # each (B, L, 2)
        ua, va = _affine(lt, rt, lb, self.px, self.py)
        sb, tb = _affine(rb, lb, rt, self.px, self.py)
        first = (ua + va) <= 1  # the lt side of the lb-rt diagonal: triangle lt, rt, lb
        u = torch.where(first, ua, 1 - sb)
        v = torch.where(first, va, 1 - tb)
        grid = torch.stack([u, v], -1)
        grid = (grid + MARGIN) / (1 + 2 * MARGIN) * 2 - 1  # texture space -> grid_sample's -1..1
        rows = self.rows[symbol]  # (B, L)
        if level is not None:
            rows = rows + level * self.per_level
        cover = torch.zeros(u.shape, dtype=u.dtype, device=u.device)
        for r in torch.unique(rows[symbol > 0]).tolist():
            sel = (rows == r) & (symbol > 0)
            g = grid[sel]  # (n, H, W, 2)
            n, h, w = g.shape[:3]
            tex = self.textures[r][None, None]
            s = F.grid_sample(tex, g.reshape(1, n * h, w, 2), mode="bilinear", padding_mode="zeros",
                              align_corners=False)
            cover = cover.index_put((sel.nonzero(as_tuple=True)), s.view(n, h, w))
        return cover


def _quad_size(corners: torch.Tensor) -> torch.Tensor:
    """The side of a square of the quad's area (shoelace over lt, rt, rb, lb), ``(B, L)``."""
    lt, lb, rt, rb = corners.unbind(2)
    ring = [lt, rt, rb, lb]
    area = sum(a[..., 0] * b[..., 1] - b[..., 0] * a[..., 1] for a, b in zip(ring, ring[1:] + ring[:1], strict=True))
    return (area.abs() / 2).sqrt()


def _affine(o: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, px: torch.Tensor, py: torch.Tensor):
    """Coordinates (a, b) of every pixel in the frame ``o + a (p1 - o) + b (p2 - o)``."""
    e1 = (p1 - o)[..., None, None, :]
    e2 = (p2 - o)[..., None, None, :]
    det = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    det = torch.where(det.abs() < 1e-6, torch.full_like(det, 1e-6), det)  # flat triangle: nothing drawn
    dx = px - o[..., 0, None, None]
    dy = py - o[..., 1, None, None]
    a = (dx * e2[..., 1] - dy * e2[..., 0]) / det
    b = (e1[..., 0] * dy - e1[..., 1] * dx) / det
    return a, b
