"""Reading images robustly into RGBA arrays, fitting them to a square, writing pictures atomically."""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from artforge.errors import ArtforgeError, BadInput, shown
from artforge.fsutil import atomic_path, check_output, read_pipe, writes_in_place

IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico",
}  # fmt: skip
RESAMPLE = ("lanczos", "box", "bilinear", "nearest")


def _pil():
    import logging

    from PIL import Image

    # Pillow logs some damaged files (a TIFF with 8 samples per pixel) at ERROR before it raises; with no
    # handler configured Python's last resort prints that to stderr, a stray line before the file's one-line
    # error. The exception says what is wrong; a program that configures logging still gets the record.
    pil_log = logging.getLogger("PIL")
    if not pil_log.handlers:
        pil_log.addHandler(logging.NullHandler())
    return Image


def _grey(values: np.ndarray, top: float) -> np.ndarray:
    return np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)


def to_rgba(im, fmt: str | None = None) -> np.ndarray:
    """Any Pillow image (first frame) -> (H, W, 4) uint8 straight RGBA.

    ``fmt`` is the file format when ``im`` is no longer the opened file (after a transpose).
    16-bit grey is on the 0-65535 scale (PNG and PNM always; other formats' 32-bit "I" images
    only when a value is above 255), float images ("F", as in TIFF) on 0-1 like float ``.npz``.
    """
    Image = _pil()
    mode, fmt = im.mode, fmt or im.format
    if mode.startswith("I"):
        a = np.asarray(im, dtype=np.float64)
        wide = mode.startswith("I;16") or fmt in ("PNG", "PPM") or a.max(initial=0) > 255
        grey = _grey(a, 65535.0 if wide else 255.0)
        key = im.info.get("transparency")  # a tRNS key colour, which Pillow keeps in info for 16-bit
        if isinstance(key, int) and not isinstance(key, bool):
            alpha = np.where(a == key, 0, 255).astype(np.uint8)
            return np.dstack([grey, grey, grey, alpha])
        im = Image.fromarray(grey, "L")
    elif mode == "F":
        im = Image.fromarray(_grey(np.nan_to_num(np.asarray(im, dtype=np.float64)), 1.0), "L")
    elif mode in ("LAB", "HSV", "YCbCr", "CMYK"):
        im = im.convert("RGB")
    if im.mode != "RGBA":
        im = im.convert("RGBA")  # keeps palette (P, PA) and tRNS transparency
    arr = np.array(im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise ValueError(f"unexpected array shape {arr.shape}")
    return arr


def _upright(im):
    """Apply the EXIF orientation (phone photos are often stored sideways), as viewers do."""
    from PIL import ImageOps

    try:
        turned = im.getexif().get(0x0112, 1) not in (0, 1)  # 0x0112: Orientation
    except Exception:  # a broken EXIF block: read the pixels as stored
        return im
    return ImageOps.exif_transpose(im) if turned else im


def folder_problem(path: Path, wanted: str) -> str:
    """Why a folder was given where a file was wanted: one a folder walk could not list, or any."""
    if not os.access(path, os.R_OK | os.X_OK):
        return "a folder that cannot be read (permission denied); its files were skipped"
    return f"is a folder, not {wanted}"


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (first frame of animations) as (H, W, 4) uint8 RGBA.

    Every failure becomes :class:`BadInput` naming the file and the problem.
    """
    Image = _pil()
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BadInput(path, "no such file") from None
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror or exc}") from None
    if path.is_dir():
        raise BadInput(path, folder_problem(path, "an image"))
    if stat.S_ISFIFO(st.st_mode):  # <(cmd), a FIFO, piped /dev/stdin: no size, no seek; read it once
        source = io.BytesIO(read_pipe(path))
    elif not stat.S_ISREG(st.st_mode):  # a device: /dev/zero would never end
        raise BadInput(path, "not a regular file or a pipe")
    elif st.st_size == 0:
        raise BadInput(path, "empty file (0 bytes)")
    else:
        source = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's format warnings; a real problem raises below
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                im.seek(0)
                im.load()
                return to_rgba(_upright(im), im.format)
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
    """Fit an RGBA image into ``size x size``: scale its longer side to ``size``, centre it on a
    transparent square.

    Resizing works on premultiplied alpha so transparent pixels don't bleed dark fringes. The
    image is resized before it is padded, so memory follows its pixels, not its longer side
    squared (a 1x20000 strip would otherwise need a 20000x20000 canvas).
    """
    if resample not in RESAMPLE:
        raise ArtforgeError(f"unknown resample filter {resample!r}; use one of {', '.join(RESAMPLE)}")
    h, w = img.shape[:2]
    if h == w == size:
        return img
    scale = size / max(h, w)
    nh, nw = (size, size) if h == w else (max(1, round(h * scale)), max(1, round(w * scale)))
    if (nh, nw) != (h, w):
        Image = _pil()
        filt = {
            "lanczos": Image.Resampling.LANCZOS,
            "box": Image.Resampling.BOX,
            "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST,
        }[resample]
        im = Image.fromarray(np.ascontiguousarray(img), "RGBA")
        if resample != "nearest":
            im = im.convert("RGBa").resize((nw, nh), filt).convert("RGBA")
        else:
            im = im.resize((nw, nh), filt)
        img = np.array(im, dtype=np.uint8)
        img[img[..., 3] == 0] = 0
    if (nh, nw) == (size, size):
        return img
    out = np.zeros((size, size, 4), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = img
    return out


def folder_files(folder: Path, suffixes: set[str]) -> list[Path]:
    """Every file under ``folder`` with one of ``suffixes``, sorted; what a data set folder holds.

    Hidden files and folders (``.thumbnails``, ``.git``) are left out; symlinked folders are
    followed, each real folder once (no loops). A subfolder that cannot be listed is returned
    itself, so the reader reports it as a skipped item instead of it vanishing without a word.
    """
    found: list[Path] = []
    seen: set[str] = set()

    def unreadable(exc: OSError) -> None:
        if exc.filename and os.fspath(exc.filename) != os.fspath(folder):
            found.append(Path(exc.filename))
        else:
            raise BadInput(folder, f"cannot list the folder: {exc.strerror or exc}")

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        # sorted: a folder reached twice (also through a link) is named by the first way in, which
        # must not depend on the order the file system lists a folder in
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in suffixes:
                f = Path(root, name)
                if f.is_file():  # not a dangling link or a fifo
                    found.append(f)
    return sorted(found)


def readable_name(name: str) -> str:
    """A file name as text that any UTF-8 writer accepts: bytes that are not UTF-8 (legal in Linux
    names, decoded by Python as surrogates) are spelled as escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def image_files(inputs: Iterable[str | os.PathLike], suffixes: set[str] | None = None) -> Iterator[Path]:
    """Expand files and folders (see :func:`folder_files`) into input file paths.

    Files named explicitly are always yielded; inside folders only known suffixes count.
    """
    suffixes = IMAGE_SUFFIXES if suffixes is None else suffixes
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            yield from folder_files(p, suffixes)
        elif p.exists() or p.is_symlink():
            yield p
        else:
            raise BadInput(p, "no such file or folder")


#: The picture formats artforge writes, told by the output name's suffix (Pillow's format names): the
#: formats it reads (IMAGE_SUFFIXES) but .pgm and .pbm (grey and 1-bit only) and .ico (at most 256x256:
#: Pillow would shrink a larger sheet). Every command that writes a picture writes the format its name
#: says, and refuses any other suffix, or none, before any work (:func:`check_picture_output`).
PICTURE_FORMATS = {
    ".png": "PNG", ".webp": "WEBP", ".gif": "GIF", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
    ".tga": "TGA", ".jpg": "JPEG", ".jpeg": "JPEG", ".ppm": "PPM", ".pnm": "PPM",
}  # fmt: skip
#: transparent pixels are laid on white (as grids are): BMP too, whose 32-bit pixels Pillow writes with the
#: alpha byte unused (read back, a transparent background showed the colour hidden under it, often black)
_NO_ALPHA = {"JPEG", "PPM", "BMP"}
_SAVE_OPTIONS = {
    "WEBP": {"lossless": True, "quality": 100},  # pixel art: WebP's default is lossy
    "JPEG": {"quality": 95, "subsampling": 0},  # 4:4:4: no colour bleeding across hard pixel edges
}
_NOTES = {
    "JPEG": "JPEG is lossy and has no transparency (laid on white); .png or .webp keep pixel art exact",
    "PPM": "PPM has no transparency (laid on white)",
    "BMP": "BMP has no transparency (laid on white)",
    "GIF": "GIF holds at most 256 colours and on/off transparency; .png or .webp keep pixel art exact",
}


def picture_format(path: str | os.PathLike) -> str:
    """The Pillow format a picture written to ``path`` is saved in, by its suffix (:data:`PICTURE_FORMATS`);
    a target written in place (``/dev/null``, a pipe, ``/dev/stdout``: :func:`artforge.fsutil.writes_in_place`)
    takes PNG. Any other suffix, or none, is a one-line :class:`BadInput`."""
    path = Path(path)
    fmt = PICTURE_FORMATS.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    if writes_in_place(path):
        return "PNG"
    what = f"{path.suffix} is not a picture format artforge writes" if path.suffix else "no suffix to tell " \
           "the picture format"
    raise BadInput(path, f"{what}; name it .png (or {', '.join(s for s in PICTURE_FORMATS if s != '.png')})")


def check_picture_output(path: str | os.PathLike) -> Path:
    """An output picture's path checked before any work: its folder (:func:`artforge.fsutil.check_output`)
    and its suffix (:func:`picture_format`); a format that loses pixels or transparency gets one note."""
    path = check_output(path)
    note_picture(path)
    return path


def note_picture(path: str | os.PathLike) -> None:
    """:func:`picture_format` for ``path`` (refusing a suffix that names none), and one note on stderr
    where that format loses pixels or transparency (JPEG, PPM, BMP, GIF)."""
    fmt = picture_format(path)
    if fmt in _NOTES:
        import click

        click.echo(f"note: {shown(path)}: {_NOTES[fmt]}", err=True)


def picture_bytes(img: np.ndarray, fmt: str = "PNG") -> bytes:
    """An (H, W[, 3|4]) uint8 array as the bytes of a ``fmt`` picture (see :data:`PICTURE_FORMATS`)."""
    from artforge.grid import composite

    Image = _pil()
    arr = np.ascontiguousarray(img)
    if fmt in _NO_ALPHA and arr.ndim == 3 and arr.shape[2] == 4:
        arr = np.ascontiguousarray(composite(arr))
    m = "L" if arr.ndim == 2 else {3: "RGB", 4: "RGBA"}[arr.shape[2]]
    buf = io.BytesIO()
    Image.fromarray(arr, m).save(buf, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    return buf.getvalue()


def to_png_bytes(img: np.ndarray) -> bytes:
    return picture_bytes(img, "PNG")


def save_picture(img: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W[, 3|4]) uint8 array, atomically, in the format ``path``'s suffix names
    (:func:`picture_format`: a real JPEG for ``x.jpg``, never PNG bytes under another name)."""
    return _write_picture(img, path, picture_format(path))


def _write_picture(img: np.ndarray, path: str | os.PathLike, fmt: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(picture_bytes(img, fmt))
    return Path(path)


def save_png(img: np.ndarray, path: str | os.PathLike) -> Path:
    """The name plugins know: like :func:`save_picture` for a picture suffix (``x.jpg`` is a real JPEG), but
    PNG for any other name, as it always wrote, instead of refusing it (a plugin's ``thumb``, ``x.tmp``)."""
    return _write_picture(img, path, PICTURE_FORMATS.get(Path(path).suffix.lower(), "PNG"))
