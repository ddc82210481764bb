"""sRGB <-> CIELAB (D65), vectorised in numpy.

Nearest-colour search and palette reduction work in CIELAB because equal distances there are
roughly equal visible differences; in sRGB, dark colours crowd together and greens dominate.
"""

from __future__ import annotations

import numpy as np

_WHITE = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_D = 6.0 / 29.0


def _linear(c: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> linear light."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _gamma(c: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB in [0, 1]."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


_LINEAR_LUT = _linear(np.arange(256) / 255.0)
_BLOCK = 1 << 14  # colours per block of srgb_to_lab: temporaries stay in cache, BLAS on one thread


def row_blocks(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of blocks of about ``size`` rows covering ``n``, none of a single row unless
    ``n`` is 1: OpenBLAS takes another path for one row, which can differ in the last bit from
    the same row inside a larger product, so a lone last row joins the block before it."""
    spans = [(s, min(s + size, n)) for s in range(0, n, max(1, size))]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] == 1:
        spans[-2:] = [(spans[-2][0], n)]
    return spans


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB, uint8 or float in [0, 255] -> (..., 3) float64 L*a*b*.

    Works through blocks of ``_BLOCK`` colours: the whole-array form held about 117 bytes of
    temporaries per pixel (700 MiB for 6 Mpx), and one (n, 3) @ (3, 3) product over millions of
    rows is spread over threads by OpenBLAS, which on a busy 2-core machine made it 15-70x slower
    than the same product in small blocks. Each block does the same float64 operations in the
    same order, so the values are identical to the whole-array ones.
    """
    rgb = np.asarray(rgb)
    flat = rgb.reshape(-1, 3)
    out = np.empty((len(flat), 3))
    for s, e in row_blocks(len(flat), _BLOCK):
        c = flat[s:e]
        lin = _LINEAR_LUT[c] if c.dtype == np.uint8 else _linear(np.clip(c, 0, 255) / 255.0)
        xyz = lin @ _RGB_TO_XYZ.T
        xyz /= _WHITE
        f = np.cbrt(xyz)
        low = xyz <= _D**3  # the linear toe near black
        f[low] = xyz[low] / (3 * _D**2) + 4.0 / 29.0
        o = out[s:e]
        np.multiply(f[:, 1], 116.0, out=o[:, 0])
        o[:, 0] -= 16.0
        np.subtract(f[:, 0], f[:, 1], out=o[:, 1])
        o[:, 1] *= 500.0
        np.subtract(f[:, 1], f[:, 2], out=o[:, 2])
        o[:, 2] *= 200.0
    return out.reshape(rgb.shape)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) L*a*b* -> (..., 3) float sRGB in [0, 255] (out-of-gamut colours are clipped)."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], -1)
    xyz = np.where(f > _D, f**3, 3 * _D**2 * (f - 4.0 / 29.0)) * _WHITE
    return _gamma(xyz @ _XYZ_TO_RGB.T) * 255.0
