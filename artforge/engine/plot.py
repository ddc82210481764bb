"""A small loss-curve plotter on pillow (no plotting library needed)."""

from __future__ import annotations

import math
import os

import numpy as np

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]


def _nice(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.1e}"
    return f"{v:.3g}"


def plot_curves(series: dict[str, list[tuple[float, float]]], path: str | os.PathLike,
                title: str = "loss", size: tuple[int, int] = (720, 420), log_y: bool = True) -> None:
    """Draw named (x, y) series as lines with axes and a legend; writes a PNG atomically."""
    from PIL import Image, ImageDraw

    from artforge.imageio import save_picture

    w, h = size
    left, right, top, bottom = 70, 20, 30, 40
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    pts = [(x, y) for s in series.values() for x, y in s if math.isfinite(y)]
    d.text((left, 8), title, fill=(0, 0, 0))
    if not pts:
        save_picture(np.asarray(img), path)
        return
    log_y = log_y and all(y > 0 for _, y in pts)
    f = (lambda y: math.log10(y)) if log_y else (lambda y: y)
    xs = [x for x, _ in pts]
    ys = [f(y) for _, y in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(x: float, y: float) -> tuple[float, float]:
        fx = left + (x - x0) / (x1 - x0) * (w - left - right)
        return fx, top + (1 - (f(y) - y0) / (y1 - y0)) * (h - top - bottom)

    d.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    for i in range(5):
        yy = y0 + (y1 - y0) * i / 4
        py = top + (1 - i / 4) * (h - top - bottom)
        d.line([left, py, w - right, py], fill=(230, 230, 230))
        d.text((4, py - 6), _nice(10**yy if log_y else yy), fill=(0, 0, 0))
        xx = x0 + (x1 - x0) * i / 4
        pxx = left + i / 4 * (w - left - right)
        d.text((pxx - 10, h - bottom + 6), _nice(xx), fill=(0, 0, 0))
    d.text(((w - left) // 2 + left - 12, h - 16), "step", fill=(0, 0, 0))
    for k, (name, s) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        line = [px(x, y) for x, y in s if math.isfinite(y)]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        elif line:
            x, y = line[0]
            d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        ly = top + 6 + 14 * k
        d.line([w - right - 130, ly + 6, w - right - 110, ly + 6], fill=colour, width=3)
        d.text((w - right - 105, ly), name, fill=(0, 0, 0))
    save_picture(np.asarray(img), path)
