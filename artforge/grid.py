"""Contact sheets: many RGBA pictures composited onto one RGB grid image."""

from __future__ import annotations

import math

import numpy as np


def composite(images: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """(N, H, W, 4) RGBA -> (N, H, W, 3) RGB over a solid background."""
    if images.shape[-1] == 3:
        return images
    rgb = images[..., :3].astype(np.float32)
    a = images[..., 3:4].astype(np.float32) / 255.0
    bg = np.asarray(background, np.float32)
    return np.round(rgb * a + bg * (1.0 - a)).astype(np.uint8)


def auto_scale(height: int, target: int = 96) -> int:
    """Integer nearest-neighbour zoom so small pictures are visible (32 px -> 3x)."""
    return max(1, target // max(1, height))


def make_grid(
    images: np.ndarray,
    ncols: int | None = None,
    scale: int | None = None,
    pad: int = 2,
    background: tuple[int, int, int] = (255, 255, 255),
    pad_color: tuple[int, int, int] = (200, 200, 200),
) -> np.ndarray:
    """Tile (N, H, W, 3|4) uint8 pictures into one (rows*H, cols*W, 3) RGB image."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    n, h, w = images.shape[:3]
    if n == 0:
        raise ValueError("no images to put in a grid")
    rgb = composite(images, background)
    scale = auto_scale(h) if scale is None else scale
    if scale > 1:
        rgb = rgb.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    out = np.empty((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), np.uint8)
    out[:] = np.asarray(pad_color, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = rgb[i]
    return out
