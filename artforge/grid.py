"""Contact sheets: many RGBA pictures composited onto one RGB grid image.

The automatic zoom only makes small pictures visible: it looks at a cell's longer side (a 20000x1
strip is not "small") and stops before the sheet passes ``ZOOM_BUDGET`` pixels. No sheet is made
past ``MAX_PIXELS``, the size at which Pillow's decompression-bomb guard (and so
:func:`artforge.imageio.load_image`) refuses to open a picture: :func:`make_grid` raises instead of
allocating it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from artforge.errors import ArtforgeError, BadInput

TARGET = 96  # automatic zoom: the longer side of a cell reaches this (32 px -> 3x, 64 px -> 1x)
ZOOM_BUDGET = 16_000_000  # automatic zoom stops before the sheet passes this many pixels
MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS: past it Pillow and artforge refuse to open a picture


def composite(images: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """(..., H, W, 4) RGBA -> (..., H, W, 3) RGB over a solid background (exact integer blend;
    opaque pictures are only sliced, so a sheet of photos costs no full-size temporaries)."""
    if images.shape[-1] == 3:
        return images
    a = images[..., 3:4]
    if a.min(initial=255) == 255:
        return images[..., :3]
    # round(rgb * a/255 + bg * (1 - a/255)) in integers (the numerator is never halfway); it is at
    # most 255 * 255 + 127, so uint16 holds it
    a = a.astype(np.uint16)
    out = images[..., :3].astype(np.uint16)
    out *= a
    a ^= 255  # 255 - a
    out += np.asarray(background, np.uint16) * a
    out += 127
    out //= 255
    return out.astype(np.uint8)


def sheet_size(height: int, width: int, nrows: int = 1, ncols: int = 1, scale: int = 1,
               pad: int = 2) -> tuple[int, int]:
    """(height, width) in pixels of a sheet of ``nrows`` x ``ncols`` cells zoomed ``scale`` times."""
    return nrows * (height * scale + pad) + pad, ncols * (width * scale + pad) + pad


def auto_scale(height: int, width: int | None = None, nrows: int = 1, ncols: int = 1, pad: int = 2,
               target: int = TARGET) -> int:
    """Integer nearest-neighbour zoom so small pictures are visible: the longer side of a cell
    reaches ``target`` (32 px -> 3x; a cell that is already that long is not zoomed), lowered while
    the whole sheet would pass ``ZOOM_BUDGET`` pixels."""
    width = height if width is None else width
    scale = max(1, target // max(1, height, width))
    while scale > 1 and math.prod(sheet_size(height, width, nrows, ncols, scale, pad)) > ZOOM_BUDGET:
        scale -= 1
    return scale


def make_grid(
    images: np.ndarray,
    ncols: int | None = None,
    scale: int | None = None,
    pad: int = 2,
    background: tuple[int, int, int] = (255, 255, 255),
    pad_color: tuple[int, int, int] = (200, 200, 200),
) -> np.ndarray:
    """Tile (N, H, W, 3|4) uint8 pictures into one (rows*H, cols*W, 3) RGB image.

    ``scale`` None zooms automatically (:func:`auto_scale`). A sheet past ``MAX_PIXELS`` is an
    :class:`ArtforgeError` (nothing could open it), raised before any memory is allocated.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    n, h, w = images.shape[:3]
    if n == 0:
        raise ValueError("no images to put in a grid")
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    auto = scale is None
    scale = auto_scale(h, w, nrows, ncols, pad) if auto else scale
    height, width = sheet_size(h, w, nrows, ncols, scale, pad)
    if height * width > MAX_PIXELS:
        zoom = f" at zoom {scale}" if scale > 1 else ""
        hint = "fewer or smaller pictures" + ("" if auto or scale == 1 else ", or a smaller --scale")
        raise ArtforgeError(f"a grid of {n} pictures of {w}x{h} px{zoom} would be {width:,}x{height:,} px "
                            f"({height * width / 1e6:,.1f} Mpx), past the {MAX_PIXELS / 1e6:.1f} Mpx that "
                            f"Pillow opens; use {hint}")
    out = np.empty((height, width, 3), np.uint8)
    out[:] = np.asarray(pad_color, np.uint8)
    H, W = h * scale, w * scale
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = pad + r * (H + pad), pad + c * (W + pad)
        # zoom one cell at a time: the whole zoomed stack would double the sheet's memory
        rgb = composite(images[i], background)  # one cell at a time, like the zoom
        cell = rgb if scale == 1 else np.broadcast_to(rgb[:, None, :, None], (h, scale, w, scale, 3))
        out[y : y + H, x : x + W] = cell.reshape(H, W, 3)
    return out


def save_grid(images: np.ndarray, path: str | os.PathLike, **kwargs) -> Path:
    """:func:`make_grid` written to ``path`` in the format its picture suffix names, else as PNG, as it always
    was (:func:`artforge.imageio.save_png`: plugins call this too; commands check their ``-o`` first with
    :func:`artforge.imageio.check_picture_output`); a sheet too large to make names ``path``."""
    from artforge.imageio import save_png

    try:
        sheet = make_grid(images, **kwargs)
    except ArtforgeError as exc:
        raise BadInput(path, str(exc)) from None
    return save_png(sheet, path)
