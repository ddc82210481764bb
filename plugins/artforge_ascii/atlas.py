"""Glyph atlas: every character of a charset rasterised into one fixed-size cell of a monospace font.

The cell is the union of the font's own box (advance x ascent+descent) and the actual ink of every
glyph, so no glyph loses ink (the seed project cropped the top-left of each glyph and clipped 21
of them) and cells keep the font's aspect: taller than wide, about 1.9 for DejaVu Sans Mono.
A proportional font is accepted with a warning; its cells take the widest advance.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artforge.errors import ArtforgeError, BadInput

FONT_DIR = Path(__file__).parent / "fonts"
DEFAULT_FONT = FONT_DIR / "DejaVuSansMono.ttf"
DEFAULT_PX = 11  # font size in pixels: 7x14 cells with DejaVu Sans Mono


class FontWarning(UserWarning):
    """A usable font with a problem (proportional advances)."""


@dataclass(frozen=True, eq=False)
class GlyphAtlas:
    """Ink coverage of each character, ``ink[v]`` is ``(height, width)`` floats in [0, 1]."""

    chars: str
    ink: np.ndarray  # (V, h, w) float32, 1 = full ink
    font: str
    px: int
    advance: float  # widest advance of the charset, pixels
    line_height: int  # ascent + descent, pixels
    monospace: bool

    @property
    def cell(self) -> tuple[int, int]:
        """(height, width) of one character cell in pixels."""
        return int(self.ink.shape[1]), int(self.ink.shape[2])

    @property
    def paper(self) -> np.ndarray:
        """(V, h, w) float32 brightness of each glyph: black ink on white paper."""
        return 1.0 - self.ink

    def paper_u8(self) -> np.ndarray:
        return np.round(self.paper * 255.0).astype(np.uint8)


def resolve_font(path: str | os.PathLike | None) -> Path:
    return DEFAULT_FONT if path in (None, "") else Path(path).expanduser().resolve()


def load_font(path: str | os.PathLike | None, px: int):
    """A Pillow FreeType font; anything that is not a readable font is one BadInput line."""
    from PIL import ImageFont

    p = resolve_font(path)
    if not p.is_file():
        raise BadInput(p, "no such font file")
    try:
        return ImageFont.truetype(str(p), px)
    except OSError as exc:
        raise BadInput(p, f"not a TrueType/OpenType font ({exc})") from None


def _ink_boxes(font, chars: str, px: int) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Each glyph's ink drawn with its origin at (0, baseline); returns bitmaps and their top-left."""
    from PIL import Image, ImageDraw

    pad = 4 * px + 8  # far larger than any overhang of a sane font
    bitmaps, corners = [], []
    for ch in chars:
        im = Image.new("L", (3 * pad, 3 * pad), 0)
        ImageDraw.Draw(im).text((pad, 2 * pad), ch, fill=255, font=font, anchor="ls")
        a = np.asarray(im)
        ys, xs = np.nonzero(a)
        if len(ys) == 0:
            bitmaps.append(np.zeros((0, 0), np.uint8))
            corners.append((0, 0))
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        bitmaps.append(a[y0:y1, x0:x1])
        corners.append((int(y0 - 2 * pad), int(x0 - pad)))  # relative to (baseline, origin)
    return bitmaps, corners


@functools.lru_cache(maxsize=32)
def _build(chars: str, font_path: str, px: int, mtime_ns: int) -> GlyphAtlas:
    font = load_font(font_path, px)
    ascent, descent = font.getmetrics()
    advances = np.array([font.getlength(ch) for ch in chars], np.float64)
    widest = float(advances.max())
    monospace = bool(widest - advances.min() <= 0.01 * max(widest, 1.0))
    if not monospace:
        odd = "".join(ch for ch, a in zip(chars, advances, strict=True) if abs(a - widest) > 0.01 * widest)[:20]
        warnings.warn(
            f"{font_path}: not a monospace font (advances {advances.min():.1f}..{widest:.1f} px, e.g. {odd!r}); "
            "cells use the widest advance", FontWarning, stacklevel=4)
    bitmaps, corners = _ink_boxes(font, chars, px)
    # the cell in (baseline, origin) coordinates: the font's box, grown to hold every glyph's ink
    top, left = -ascent, 0
    bottom, right = descent, int(np.ceil(widest - 1e-6))
    for bm, (y, x) in zip(bitmaps, corners, strict=True):
        if bm.size:
            top, left = min(top, y), min(left, x)
            bottom, right = max(bottom, y + bm.shape[0]), max(right, x + bm.shape[1])
    h, w = bottom - top, right - left
    ink = np.zeros((len(chars), h, w), np.float32)
    for i, (bm, (y, x)) in enumerate(zip(bitmaps, corners, strict=True)):
        if bm.size:
            ink[i, y - top : y - top + bm.shape[0], x - left : x - left + bm.shape[1]] = bm / 255.0
    ink.setflags(write=False)
    return GlyphAtlas(chars, ink, font_path, px, widest, ascent + descent, monospace)


def build_atlas(chars: str, font: str | os.PathLike | None = None, px: int = DEFAULT_PX) -> GlyphAtlas:
    """The (cached) atlas of ``chars`` in ``font`` (None: bundled DejaVu Sans Mono) at ``px`` pixels."""
    if not 4 <= px <= 128:
        raise ArtforgeError(f"font size px={px} is out of range (4-128 pixels)")
    p = resolve_font(font)
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        raise BadInput(p, "no such font file") from None
    return _build(chars, str(p), int(px), mtime)
