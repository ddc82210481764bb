"""Reading images robustly into RGBA arrays, fitting them to a square, writing PNGs atomically."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from artforge.errors import ArtforgeError, BadInput
from artforge.fsutil import atomic_path

IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico",
}  # fmt: skip
RESAMPLE = ("lanczos", "box", "bilinear", "nearest")


def _pil():
    from PIL import Image

    return Image


def to_rgba(im) -> np.ndarray:
    """Any Pillow image (first frame) -> (H, W, 4) uint8 straight RGBA."""
    Image = _pil()
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(a * (255.0 / hi)), 0, 255).astype(np.uint8)
        im = Image.fromarray(grey, "L")
    elif mode == "F":
        grey = np.clip(np.round(np.asarray(im, dtype=np.float64)), 0, 255).astype(np.uint8)
        im = Image.fromarray(grey, "L")
    elif mode in ("LAB", "HSV", "YCbCr", "CMYK"):
        im = im.convert("RGB")
    if im.mode == "P" or im.mode == "PA":
        im = im.convert("RGBA")  # keeps palette transparency
    if im.mode != "RGBA":
        im = im.convert("RGBA")
    arr = np.array(im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise ValueError(f"unexpected array shape {arr.shape}")
    return arr


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (first frame of animations) as (H, W, 4) uint8 RGBA.

    Every failure becomes :class:`BadInput` naming the file and the problem.
    """
    Image = _pil()
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadInput(path, "no such file") from None
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror or exc}") from None
    if path.is_dir():
        raise BadInput(path, "is a folder, not an image")
    if size == 0:
        raise BadInput(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.seek(0)
                im.load()
                return to_rgba(im)
    except PermissionError:
        raise BadInput(path, "permission denied") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadInput(path, f"image too large (decompression-bomb guard): {exc}") from None
    except Image.UnidentifiedImageError:
        raise BadInput(path, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower() or isinstance(exc, EOFError):
            msg = f"truncated or corrupt image ({msg})"
        raise BadInput(path, f"unreadable image: {msg}") from None


def fit_square(img: np.ndarray, size: int, resample: str = "lanczos") -> np.ndarray:
    """Fit an RGBA image into ``size x size``: centre it on a transparent square, then resize.

    Resizing works on premultiplied alpha so transparent pixels don't bleed dark fringes.
    """
    if resample not in RESAMPLE:
        raise ArtforgeError(f"unknown resample filter {resample!r}; use one of {', '.join(RESAMPLE)}")
    h, w = img.shape[:2]
    if h == w == size:
        return img
    if h != w:
        side = max(h, w)
        canvas = np.zeros((side, side, 4), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        canvas[top : top + h, left : left + w] = img
        img = canvas
    if img.shape[0] == size:
        return img
    Image = _pil()
    filt = {
        "lanczos": Image.Resampling.LANCZOS,
        "box": Image.Resampling.BOX,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
    }[resample]
    im = Image.fromarray(img, "RGBA")
    if resample != "nearest":
        im = im.convert("RGBa").resize((size, size), filt).convert("RGBA")
    else:
        im = im.resize((size, size), filt)
    out = np.array(im, dtype=np.uint8)
    out[out[..., 3] == 0] = 0
    return out


def image_files(inputs: Iterable[str | os.PathLike], suffixes: set[str] | None = None) -> Iterator[Path]:
    """Expand files and folders (recursively, sorted) into input file paths.

    Files named explicitly are always yielded; inside folders only known suffixes count.
    """
    suffixes = IMAGE_SUFFIXES if suffixes is None else suffixes
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in suffixes and not f.name.startswith("."):
                    yield f
        elif p.exists() or p.is_symlink():
            yield p
        else:
            raise BadInput(p, "no such file or folder")


def to_png_bytes(img: np.ndarray) -> bytes:
    Image = _pil()
    mode = {2: "L", 3: {3: "RGB", 4: "RGBA"}}
    arr = np.ascontiguousarray(img)
    m = mode[2] if arr.ndim == 2 else mode[3][arr.shape[2]]
    buf = io.BytesIO()
    Image.fromarray(arr, m).save(buf, format="PNG")
    return buf.getvalue()


def save_png(img: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W[, 3|4]) uint8 array as PNG, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(to_png_bytes(img))
    return Path(path)
