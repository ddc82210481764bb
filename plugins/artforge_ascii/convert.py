"""Image -> ASCII: each cell gets the glyph whose ink pattern best matches the cell's pixels.

Brightness ramps (jp2a and most converters) give a cell the character whose *average* ink matches
the cell's average brightness, so a vertical stroke and a grey patch become the same character.
Here each glyph is seen at the resolution the picture has inside one cell (its footprint, between
2x1 and the full glyph size), and the cell takes the glyph nearest in squared error: a left edge
picks '[' or '|', a bottom edge '_', a diagonal '/'. All cells of all pictures are one matrix
product. ``edges`` adds the agreement of horizontal and vertical gradients to the match, which
favours outlines over tone.

Glyphs cannot be darker than their densest character (about 45% ink for DejaVu Sans Mono), so
``tone`` pulls the target halfway toward the glyphs' range before matching: a solid black area
then becomes the densest characters rather than a mix that loses its shape.
"""

from __future__ import annotations

import functools

import numpy as np

from artforge_ascii.atlas import GlyphAtlas
from artforge_ascii.layout import MAX_SIDE

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
DEFAULT_COLS = 80


def paper_brightness(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, H, W, 4) RGBA over white paper -> (N, height, width) luma in [0, 1] (Lanczos resize)."""
    from PIL import Image

    x = images.astype(np.float32) / 255.0
    alpha = x[..., 3:4]
    luma = (x[..., :3] * alpha + (1.0 - alpha)) @ LUMA
    if luma.shape[1:] == (height, width):
        return np.clip(luma, 0.0, 1.0)
    out = [np.asarray(Image.fromarray(im, "F").resize((width, height), Image.Resampling.LANCZOS)) for im in luma]
    return np.clip(np.stack(out), 0.0, 1.0)


def grid_for(shape: tuple[int, int], atlas: GlyphAtlas, cols: int | None, rows: int | None) -> tuple[int, int]:
    """The grid to use: the codec's, or 80 columns with rows keeping the picture's aspect. A picture
    so tall that this passes ``MAX_SIDE`` rows gets ``MAX_SIDE`` rows and fewer columns instead (a
    2x1000 picture: 2x512, not 80x19989): the text stays readable by the fit-to-text codec, which
    takes at most ``MAX_SIDE`` a side, and the work stays proportional to the picture."""
    if cols is not None and rows is not None:
        return cols, rows
    (H, W), (h, w) = shape, atlas.cell
    aspect = (H / W) * (w / h)  # rows per column that keep the picture's shape
    cols, rows = DEFAULT_COLS, round(DEFAULT_COLS * aspect)
    if rows > MAX_SIDE:
        cols, rows = max(1, round(MAX_SIDE / aspect)), MAX_SIDE
    return cols, max(1, rows)


def footprint(shape: tuple[int, int], atlas: GlyphAtlas, cols: int, rows: int) -> tuple[int, int]:
    """Matching resolution of one cell: the picture's pixels per cell, between 2x1 and the glyph size."""
    (H, W), (h, w) = shape, atlas.cell
    return max(2, min(h, round(H / rows))), max(1, min(w, round(W / cols)))


@functools.lru_cache(maxsize=32)
def _glyphs_at(atlas: GlyphAtlas, kh: int, kw: int) -> np.ndarray:
    """(V, kh, kw) glyph brightness, box-averaged (exact area averaging for any size); read-only.

    Cached: converting a folder asks for the same footprint once per picture, and resizing every
    glyph each time (95 Pillow resizes a picture) was most of ``convert``'s time on small pictures.
    The key is the atlas object itself (hashed by identity, ``eq=False``; atlases are cached and
    immutable), and the cache keeps it alive, so an id is never reused for another atlas."""
    from PIL import Image

    paper = atlas.paper
    if (kh, kw) == paper.shape[1:]:
        out = paper.astype(np.float32)
    else:
        out = np.stack([np.asarray(Image.fromarray(g, "F").resize((kw, kh), Image.Resampling.BOX)) for g in paper])
    out.setflags(write=False)
    return out


def _grads(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    gy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return gx, gy


def image_to_tokens(images: np.ndarray, atlas: GlyphAtlas, cols: int | None, rows: int | None,
                    edges: float = 0.0, tone: float = 0.5) -> np.ndarray:
    """(N, H, W, 4) RGBA -> (N, rows, cols) charset indices (see the module doc)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    n, H, W = images.shape[:3]
    cols, rows = grid_for((H, W), atlas, cols, rows)
    kh, kw = footprint((H, W), atlas, cols, rows)
    glyphs = _glyphs_at(atlas, kh, kw)  # (V, kh, kw)
    target = paper_brightness(images, rows * kh, cols * kw)
    darkest = float(glyphs.reshape(len(glyphs), -1).mean(1).min())
    target = target * (1.0 - tone) + tone * (darkest + (1.0 - darkest) * target)

    def cells(x: np.ndarray) -> np.ndarray:
        return x.reshape(n, rows, kh, cols, kw).transpose(0, 1, 3, 2, 4).reshape(-1, kh * kw)

    feats_c, feats_g = [cells(target)], [glyphs.reshape(len(glyphs), -1)]
    if edges > 0:
        weight = np.float32(np.sqrt(edges))
        padded = np.pad(glyphs, ((0, 0), (1, 1), (1, 1)), constant_values=1.0)  # glyphs sit on paper
        for t_grad, g_grad in zip(_grads(target), _grads(padded), strict=True):
            feats_c.append(weight * cells(t_grad))
            feats_g.append(weight * g_grad[:, 1:-1, 1:-1].reshape(len(glyphs), -1))
    c = np.concatenate(feats_c, 1).astype(np.float32)
    g = np.concatenate(feats_g, 1).astype(np.float32)
    score = 2.0 * (c @ g.T) - (g * g).sum(1)  # = |c|^2 - |c - g|^2: the nearest glyph scores highest
    return score.argmax(1).reshape(n, rows, cols)


def brightness_ramp(images: np.ndarray, atlas: GlyphAtlas, cols: int, rows: int) -> np.ndarray:
    """The baseline: each cell's mean brightness matched to the nearest glyph's mean brightness."""
    target = paper_brightness(np.asarray(images), rows, cols)
    means = atlas.paper.reshape(len(atlas.chars), -1).mean(1)
    return np.abs(target[..., None] - means).argmin(-1)
