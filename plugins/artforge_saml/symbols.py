"""Symbol textures: artforge's own stand-ins for the game's basic shapes, or the user's pictures.

The game's symbol textures belong to SEGA and are not shipped. artforge draws a few of the
game's geometric shapes itself, from signed distance functions, under the game's ids; any other
id is drawn as an outlined box. ``symbols=DIR`` (a folder of ``<id>.png`` pictures, e.g. the
textures an editor such as OpenSAE installs) replaces the stand-ins with real pictures.

A texture covers the symbol's unit square (``u, v`` in 0..1) plus a ``MARGIN`` on every side,
so a soft edge (used while fitting) has room to fade out beyond the quad.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from artforge.errors import ArtforgeError

MARGIN = 0.25
TEXELS = 128  # texels across the unit square

def _box(u, v, half=0.5):
    q = np.maximum(np.abs(u - 0.5) - half, np.abs(v - 0.5) - half)
    return q


def _circle(u, v):
    return np.hypot(u - 0.5, v - 0.5) - 0.5


def _triangle(u, v):
    # apex at the top centre, base along the bottom edge
    edges = [(0.5, 0.0, 0.0, 1.0), (1.0, 1.0, 0.5, 0.0), (0.0, 1.0, 1.0, 1.0)]
    d = np.full(np.shape(u), -np.inf)
    for x0, y0, x1, y1 in edges:
        nx, ny = y0 - y1, x1 - x0  # outward normal (the edges run top, bottom-left, bottom-right)
        n = np.hypot(nx, ny)
        d = np.maximum(d, ((u - x0) * nx + (v - y0) * ny) / n)
    return d


def _diamond(u, v):
    return (np.abs(u - 0.5) + np.abs(v - 0.5) - 0.5) / np.sqrt(2)


def _ring(u, v, width=0.125):
    return np.abs(np.hypot(u - 0.5, v - 0.5) - (0.5 - width / 2)) - width / 2


def _donut(u, v):
    return _ring(u, v, width=0.25)


def _outlined_box(u, v, width=0.125):
    return np.maximum(_box(u, v), -_box(u, v, 0.5 - width))


# game id (as in the community editors' symbol lists) -> (name, signed distance, negative inside)
STAND_INS = {
    241: ("circle", _circle),
    242: ("triangle", _triangle),
    243: ("square", _box),
    256: ("diamond", _diamond),
    271: ("donut", _donut),
    272: ("outlined circle", _ring),
    274: ("outlined square", _outlined_box),
}
SQUARE = 243
FALLBACK = 274  # what an id with no picture is drawn as


def _grid(texels: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(round(texels * (1 + 2 * MARGIN)))
    c = (np.arange(n) + 0.5) / texels - MARGIN
    return np.meshgrid(c, c, indexing="xy")


def shape_alpha(sdf, softness: float = 0.0, texels: int = TEXELS) -> np.ndarray:
    """Coverage of a shape on the margin grid: anti-aliased over one texel, or a sigmoid of
    width ``softness`` (in unit-square units) for smooth gradients while fitting."""
    u, v = _grid(texels)
    d = sdf(u, v)
    if softness > 0:
        return (1.0 / (1.0 + np.exp(np.clip(d / softness, -60, 60)))).astype(np.float32)
    return np.clip(0.5 - d * texels, 0.0, 1.0).astype(np.float32)


def load_symbol_dir(folder: str | os.PathLike, texels: int = TEXELS) -> dict[int, np.ndarray]:
    """``<id>.png`` pictures from a folder, as coverage on the margin grid (alpha, or darkness
    for opaque pictures)."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise ArtforgeError(f"symbols={folder}: no such folder")
    out = {}
    pad = int(round(texels * MARGIN))
    for f in sorted(folder.glob("*.png")):
        if not f.stem.isdigit():
            continue
        try:
            with Image.open(f) as im:
                rgba = np.asarray(im.convert("RGBA").resize((texels, texels), Image.Resampling.LANCZOS))
        except (OSError, Image.DecompressionBombError) as exc:
            raise ArtforgeError(f"{f}: cannot read symbol picture ({exc})") from None
        a = rgba[..., 3].astype(np.float32) / 255
        if a.min() > 0.99:  # no transparency: treat dark as ink
            a = 1 - rgba[..., :3].astype(np.float32).mean(-1) / 255
        out[int(f.stem)] = np.pad(a, pad)
    if not out:
        raise ArtforgeError(f"symbols={folder}: no <id>.png pictures found")
    return out


def texture_table(symbol_dir: str | None = None, softness: float = 0.0,
                  texels: int = TEXELS) -> tuple[np.ndarray, dict[int, int]]:
    """Stacked textures ``(K, S, S)`` and a map game id -> row; the last row is the fallback."""
    pics = {k: shape_alpha(sdf, softness, texels) for k, (_, sdf) in STAND_INS.items()}
    if symbol_dir:
        pics.update(load_symbol_dir(symbol_dir, texels))
    ids = sorted(pics)
    table = np.stack([pics[i] for i in ids] + [shape_alpha(STAND_INS[FALLBACK][1], softness, texels)])
    return table, {i: r for r, i in enumerate(ids)}
