"""Picture -> Symbol Art by differentiable rendering: a quadtree start, then gradient descent.

1. The picture is fitted into the canvas (centred, aspect kept) and cut into a quadtree: the
   block with the largest squared error is split until the layer budget is spent. Each opaque
   block becomes one square layer of its mean colour (that mosaic is the baseline).
2. Every layer's four corners, colour and opacity are then optimised together with Adam through
   :class:`SamlRenderer`, on soft-edged squares whose softness anneals towards sharp, so corners
   get gradients from the pixels around each edge.
   Edges are blurred over about a pixel at first and a tenth of one at the end, whatever each
   layer's size.
3. Rounding corners to integers (what a .saml holds) costs 2-4 dB, so for the last quarter of the
   steps the corners are rounded and frozen while colours and opacities adapt on sharp edges.
4. The result is rounded to 8-bit colour and 8 opacity steps; after each stage it is kept only if
   its rendered error is lower than the best so far (the rounded mosaic to start with).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import torch

from artforge_saml.renderer import OFFSET, SamlRenderer
from artforge_saml.samlfile import ALPHA_STEPS, COORD_MAX, COORD_MIN
from artforge_saml.symbols import SQUARE

BLUR = (1.0, 0.1)  # edge width in pixels, first and last stage


@dataclass
class FitResult:
    tokens: np.ndarray  # (L, 13) tokens, empty rows last
    mse_baseline: float  # the rounded quadtree mosaic: premultiplied RGBA, over the picture's box
    mse_fit: float  # the returned layers, the same way
    layers: int  # non-empty rows

    @property
    def psnr_baseline(self) -> float:
        return psnr(self.mse_baseline)

    @property
    def psnr_fit(self) -> float:
        return psnr(self.mse_fit)


def psnr(mse: float) -> float:
    return float(10 * np.log10(1 / max(mse, 1e-10)))


def place(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The picture fitted into the canvas, centred, aspect kept: ``(height, width, 4)`` float
    premultiplied RGBA in 0..1 (transparent around it), and the picture's box in it."""
    from PIL import Image

    h, w = image.shape[:2]
    k = min(width / w, height / h)
    nw, nh = max(1, round(w * k)), max(1, round(h * k))
    im = Image.fromarray(np.ascontiguousarray(image), "RGBA").convert("RGBa")
    im = im.resize((nw, nh), Image.Resampling.LANCZOS if k < 1 else Image.Resampling.NEAREST)
    canvas = np.zeros((height, width, 4), np.float32)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    box = (slice(y0, y0 + nh), slice(x0, x0 + nw))
    canvas[box] = np.asarray(im, np.float32) / 255
    return canvas, box


def quadtree(target: np.ndarray, budget: int) -> list[tuple[int, int, int, int]]:
    """Opaque blocks ``(y, x, h, w)`` covering the picture: the block with the largest squared
    error is split in four while the opaque ones still fit in ``budget`` layers."""
    ys, xs = np.nonzero(target[..., 3] > 0.02)
    if not len(ys):
        return []

    def entry(y, x, h, w):
        block = target[y : y + h, x : x + w].reshape(-1, 4)
        err = float(((block - block.mean(0)) ** 2).sum())
        return (-err, y, x, h, w)

    def opaque(y, x, h, w):
        return bool(target[y : y + h, x : x + w, 3].mean() >= 0.5)

    heap = [entry(ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)]
    leaves = []
    count = int(opaque(*heap[0][1:]))
    while heap:
        neg, y, x, h, w = heapq.heappop(heap)
        h1, w1 = h // 2, w // 2
        kids = [(yy, xx, hh, ww) for yy, hh in ((y, h1), (y + h1, h - h1)) for xx, ww in ((x, w1), (x + w1, w - w1))
                if hh and ww]
        grown = count - opaque(y, x, h, w) + sum(opaque(*k) for k in kids)
        if neg >= 0 or len(kids) < 2 or grown > budget:
            leaves.append((y, x, h, w))  # good enough, too small, or no room: stays one block
            continue
        count = grown
        for k in kids:
            heapq.heappush(heap, entry(*k))
    return [b for b in leaves if opaque(*b)]


def mosaic_layers(target: np.ndarray, blocks, width: int, height: int) -> np.ndarray:
    """One opaque square layer per block, larger blocks behind: ``(n, 13)`` float tokens."""
    rows = []
    for y, x, h, w in sorted(blocks, key=lambda b: b[2] * b[3]):
        block = target[y : y + h, x : x + w]
        a = block[..., 3].mean()
        rgb = block[..., :3].reshape(-1, 3).sum(0) / max(block[..., 3].sum(), 1e-6)
        l, t = x - width / 2, y - height / 2
        r, b = l + w, t + h
        rows.append([SQUARE + 1, *(np.clip(rgb, 0, 1) * 255), ALPHA_STEPS if a >= 0.5 else 0,
                     l + OFFSET, t + OFFSET, l + OFFSET, b + OFFSET, r + OFFSET, t + OFFSET, r + OFFSET, b + OFFSET])
    return np.array(rows, np.float32).reshape(-1, 13)


def quantise(layers: torch.Tensor) -> torch.Tensor:
    """Round float layers to what a .saml file holds."""
    q = layers.detach().clone()
    q[..., 1:4] = q[..., 1:4].round().clamp(0, 255)
    q[..., 4] = q[..., 4].round().clamp(0, ALPHA_STEPS)
    q[..., 5:] = q[..., 5:].round().clamp(COORD_MIN + OFFSET, COORD_MAX + OFFSET)
    return q.long()


def fit_picture(image: np.ndarray, layers: int, steps: int = 200, width: int = 192, height: int = 96,
                seed: int = 0, lr: float = 0.5, start: np.ndarray | None = None) -> FitResult:
    """Fit at most ``layers`` layers to one ``(H, W, 4)`` uint8 RGBA picture.

    ``start``: float layer rows ``(n, 13)`` (token layout, front row first, n <= layers) to begin
    from instead of the quadtree mosaic, e.g. saml-net's guess; the baseline is then that start."""
    torch.manual_seed(seed)
    target_np, (bys, bxs) = place(image, width, height)
    target = torch.from_numpy(target_np).permute(2, 0, 1)[None]
    if start is None:
        start_np, opacity = mosaic_layers(target_np, quadtree(target_np, layers), width, height), None
    else:
        start_np = np.asarray(start, np.float32).reshape(-1, 13)[:layers]
        opacity = torch.logit(torch.from_numpy(start_np[:, 4] / ALPHA_STEPS).clamp(0.05, 0.95))[None]
    start = torch.from_numpy(start_np)[None]
    sharp = SamlRenderer(width, height)
    out = np.zeros((layers, 13), np.int64)

    def error(q):
        with torch.no_grad():
            return float((sharp.premultiplied(q) - target)[..., bys, bxs].pow(2).mean())

    if not start.shape[1]:  # nothing opaque to draw
        empty = error(torch.zeros((1, 1, 13), dtype=torch.long))
        return FitResult(out, empty, empty, 0)

    base = quantise(start)
    best, best_err = base, error(base)
    mse_base = best_err
    # parameters: corners in canvas units, colour and opacity through sigmoids (always in range)
    corners = start[..., 5:].clone().requires_grad_(True)
    rgb = torch.logit((start[..., 1:4] / 255).clamp(0.02, 0.98)).requires_grad_(True)
    op = (torch.full(start.shape[:2], 3.0) if opacity is None else opacity.clone()).requires_grad_(True)
    opt = torch.optim.Adam([{"params": [corners], "lr": lr}, {"params": [rgb, op], "lr": 0.05}])

    def current() -> torch.Tensor:
        return torch.cat([start[..., :1], torch.sigmoid(rgb) * 255, torch.sigmoid(op)[..., None] * ALPHA_STEPS,
                          corners], -1)

    # edges about a pixel wide at first and a tenth of one at the end, whatever a layer's size
    soft = SamlRenderer(width, height, softness=tuple(np.geomspace(0.5, 0.005, 12)))
    polish = steps // 4
    moving = steps - polish
    levels = min(4, moving)
    for i, blur in enumerate(np.geomspace(BLUR[0], BLUR[1], levels) if levels else []):
        for _ in range(moving // levels + (i < moving % levels)):
            loss = (soft.premultiplied(current(), blur=float(blur)) - target).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        q = quantise(current())
        err = error(q)
        if err < best_err:
            best, best_err = q, err
    if polish:
        # a quarter of the steps: corners rounded to integers (as the file holds them) and frozen,
        # colours and opacities make up for the rounding, on sharp edges
        with torch.no_grad():
            corners.copy_(corners.round())
        opt2 = torch.optim.Adam([rgb, op], lr=0.02)
        for _ in range(polish):
            loss = (sharp.premultiplied(current()) - target).pow(2).mean()
            opt2.zero_grad()
            loss.backward()
            opt2.step()
        q = quantise(current())
        err = error(q)
        if err < best_err:
            best, best_err = q, err
    keep = best[0][best[0, :, 4] > 0].numpy()
    out[: len(keep)] = keep
    return FitResult(out, mse_base, best_err, len(keep))
