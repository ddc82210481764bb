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


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB, uint8 or float in [0, 255] -> (..., 3) float64 L*a*b*."""
    rgb = np.asarray(rgb)
    lin = _LINEAR_LUT[rgb] if rgb.dtype == np.uint8 else _linear(np.clip(rgb, 0, 255) / 255.0)
    xyz = lin @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _D**3, np.cbrt(xyz), xyz / (3 * _D**2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) L*a*b* -> (..., 3) float sRGB in [0, 255] (out-of-gamut colours are clipped)."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], -1)
    xyz = np.where(f > _D, f**3, 3 * _D**2 * (f - 4.0 / 29.0)) * _WHITE
    return _gamma(xyz @ _XYZ_TO_RGB.T) * 255.0
