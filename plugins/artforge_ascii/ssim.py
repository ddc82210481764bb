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
    """Mean SSIM of each pair of grey images ``(N, H, W)`` (or ``(H, W)``) in ``[0, data_range]`` -> ``(N,)``."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64, device=a.device)
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
