"""SSIM (Wang et al. 2004) in torch: an 11-tap Gaussian window (sigma 1.5), C1 = (0.01 L)^2,
C2 = (0.03 L)^2, data range L = 1, averaged over the window positions that fit inside the image.

Written here (not taken from scikit-image) so evaluation and the benchmark need nothing extra.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def ssim(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, window: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of each pair of grey images ``(N, H, W)`` (or ``(H, W)``) in ``[0, data_range]`` -> ``(N,)``.

    Computed in float32 for float32 tensors (fast convolutions), else in float64.
    """
    a = torch.as_tensor(a)
    dtype = torch.float32 if a.dtype == torch.float32 else torch.float64
    a = a.to(dtype)
    b = torch.as_tensor(b).to(device=a.device, dtype=dtype)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    size = min(window, a.shape[-1], a.shape[-2])
    size -= 1 - size % 2  # odd
    g = _window(size, sigma, a.dtype, a.device)
    gx, gy = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, gx), gy)

    x, y = a[:, None], b[:, None]
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def _box(ink: torch.Tensor, mr: int, mc: int) -> tuple[slice, slice] | None:
    """Cell slices of the bounding box of ``ink`` (rows, cols), ``mr``/``mc`` cells wider; None if blank."""
    rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
    if len(rows) == 0:
        return None
    r, c = ink.shape
    return (slice(max(0, int(rows[0]) - mr), min(r, int(rows[-1]) + 1 + mr)),
            slice(max(0, int(cols[0]) - mc), min(c, int(cols[-1]) + 1 + mc)))


def grid_ssim(render, target: torch.Tensor, pred: torch.Tensor, space: int, window: int = 11) -> tuple[float, float]:
    """SSIM between the glyph renders of two ``(rows, cols)`` grids: (whole picture, target piece's box).

    Blank cells render as flat paper, and SSIM of flat paper against flat paper is exactly 1, so
    for the whole picture only the box around the ink of either grid, widened by a window's size,
    is rendered: every window not inside it sees paper only, and scores 1. The piece figure is the SSIM
    over the target's bounding box plus one cell, where margins cannot inflate it.
    """
    h, w = render.cell
    rows, cols = target.shape
    H, W = rows * h, cols * w
    s = min(window, H, W)
    s -= 1 - s % 2

    def over(box) -> tuple[float, int]:
        a = render(target[None, box[0], box[1]])[0, 0]
        b = render(pred[None, box[0], box[1]])[0, 0]
        n = (a.shape[0] - s + 1) * (a.shape[1] - s + 1)
        return float(ssim(a, b, window=s)[0]), n

    whole_box = _box((target != space) | (pred != space), -(-(s - 1) // h), -(-(s - 1) // w))
    if whole_box is None:
        return 1.0, 1.0
    total = (H - s + 1) * (W - s + 1)
    if min(whole_box[0].stop - whole_box[0].start, whole_box[1].stop - whole_box[1].start) * min(h, w) < s:
        whole_box = (slice(0, rows), slice(0, cols))  # too small to hold a window: use the whole grid
    mean, n = over(whole_box)
    whole = (total - n + mean * n) / total
    piece_box = _box(target != space, 1, 1)
    if piece_box is None or min(piece_box[0].stop - piece_box[0].start,
                                piece_box[1].stop - piece_box[1].start) * min(h, w) < s:
        return whole, whole
    return whole, over(piece_box)[0]
