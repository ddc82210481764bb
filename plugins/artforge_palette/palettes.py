"""Palette files and presets: GIMP ``.gpl``, JSON lists of hex colours, ``.hex`` lines, PNG swatches.

A palette here is an ``(N, 4)`` uint8 RGBA array of distinct, visible colours (alpha > 0); the
codec adds the transparent entry itself. Every reading problem is a one-line :class:`BadInput`
naming the file, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from artforge.errors import BadInput

PRESETS_DIR = Path(__file__).parent / "presets"
MAX_COLORS = 65536
SUFFIXES = (".gpl", ".json", ".hex", ".png")
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


def presets() -> dict[str, Path]:
    """Preset name -> its .gpl file (``pico8``, ``gameboy``, ``nes``, ``cga``, ``bw``)."""
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.gpl"))}


def parse_hex(text: str) -> tuple[int, int, int, int] | None:
    """'#rgb', '#rrggbb' or '#rrggbbaa' (the '#' optional) -> RGBA, or None when malformed."""
    m = _HEX.match(text.strip())
    if not m:
        return None
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    if len(h) == 6:
        h += "ff"
    return tuple(int(h[i : i + 2], 16) for i in range(0, 8, 2))  # type: ignore[return-value]


def to_hex(rgba: np.ndarray) -> list[str]:
    """(N, 4) RGBA -> '#rrggbb' (opaque) or '#rrggbbaa' strings."""
    out = []
    for r, g, b, a in np.asarray(rgba, np.uint8).tolist():
        out.append(f"#{r:02x}{g:02x}{b:02x}" + (f"{a:02x}" if a != 255 else ""))
    return out


def from_hex_list(items: list[str], source: str) -> np.ndarray:
    cols = []
    for i, s in enumerate(items):
        c = parse_hex(s) if isinstance(s, str) else None
        if c is None:
            raise BadInput(source, f"entry {i + 1}: bad colour {s!r} (expected '#rrggbb' or '#rrggbbaa')")
        cols.append(c)
    return np.array(cols, np.uint8).reshape(-1, 4)


def clean(colors: np.ndarray, source: str) -> np.ndarray:
    """Check the size, drop fully transparent entries and repeats (first one kept)."""
    if len(colors) > MAX_COLORS:
        raise BadInput(source, f"{len(colors):,} colours; a palette holds at most {MAX_COLORS:,}")
    colors = colors[colors[:, 3] > 0]
    if len(colors) == 0:
        raise BadInput(source, "no visible colours (a palette needs at least one colour with alpha > 0)")
    keys = np.ascontiguousarray(colors).view("<u4").ravel()
    _, first = np.unique(keys, return_index=True)
    return np.ascontiguousarray(colors[np.sort(first)])


def _read_gpl(path: Path, text: str) -> np.ndarray:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "GIMP Palette":
        raise BadInput(path, "not a GIMP palette (the first line must be 'GIMP Palette')")
    channels = 3
    cols = []
    for no, raw in enumerate(lines[1:], 2):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split(":", 1)[0].strip().lower()
        if ":" in line and head in ("name", "columns", "channels"):
            if head == "channels":
                value = line.split(":", 1)[1].strip().upper()
                if value not in ("RGB", "RGBA"):
                    raise BadInput(path, f"line {no}: unknown channels {value!r} (RGB or RGBA)")
                channels = len(value)
            continue
        parts = line.split()
        try:
            values = [int(v) for v in parts[:channels]]
        except ValueError:
            values = []
        if len(values) != channels or any(not 0 <= v <= 255 for v in values):
            want = "R G B" + (" A" if channels == 4 else "")
            raise BadInput(path, f"line {no}: bad colour {line[:40]!r} (expected '{want} [name]', values 0-255)")
        cols.append(values + [255] * (4 - channels))
        if len(cols) > MAX_COLORS:
            raise BadInput(path, f"more than {MAX_COLORS:,} colours; a palette holds at most {MAX_COLORS:,}")
    return np.array(cols, np.uint8).reshape(-1, 4)


def _read_png(path: Path) -> np.ndarray:
    from artforge.imageio import load_image

    pixels = load_image(path).reshape(-1, 4)
    pixels = pixels[pixels[:, 3] > 0]
    keys = np.ascontiguousarray(pixels).view("<u4").ravel()
    uniq, first = np.unique(keys, return_index=True)
    if len(uniq) > MAX_COLORS:
        raise BadInput(path, f"{len(uniq):,} distinct colours; a palette holds at most {MAX_COLORS:,}")
    return pixels[np.sort(first)]  # in order of first appearance, row by row


def read_palette(path: str | os.PathLike) -> np.ndarray:
    """Read a palette file (by suffix) into distinct visible RGBA colours, in file order."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise BadInput(path, f"unknown palette format {suffix or '(no suffix)'!r}; use .gpl, .json, .hex or .png")
    if not path.is_file():
        raise BadInput(path, "no such palette file")
    if suffix == ".png":
        return clean(_read_png(path), str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(path, f"cannot read palette ({exc})") from None
    if suffix == ".gpl":
        colors = _read_gpl(path, text)
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(path, f"invalid JSON ({exc})") from None
        except RecursionError:  # lists nested thousands deep
            raise BadInput(path, "invalid JSON (nested too deeply)") from None
        if isinstance(data, dict) and isinstance(data.get("colors"), list):
            data = data["colors"]
        if not isinstance(data, list):
            raise BadInput(path, "expected a JSON list of hex colours, e.g. [\"#000000\", \"#ff004d\"]")
        if len(data) > MAX_COLORS:
            raise BadInput(path, f"{len(data):,} colours; a palette holds at most {MAX_COLORS:,}")
        colors = from_hex_list(data, str(path))
    else:  # .hex: one colour per line (the Lospec format)
        items = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("#!", ";"))]
        if len(items) > MAX_COLORS:
            raise BadInput(path, f"{len(items):,} colours; a palette holds at most {MAX_COLORS:,}")
        colors = from_hex_list(items, str(path))
    return clean(colors, str(path))


def write_palette(colors: np.ndarray, path: str | os.PathLike, name: str = "artforge") -> Path:
    """Write visible RGBA colours as .gpl (with 'Channels: RGBA' when any is translucent), .json, .hex or .png."""
    from artforge.fsutil import atomic_write_text
    from artforge.imageio import save_picture

    path = Path(path)
    colors = np.asarray(colors, np.uint8).reshape(-1, 4)
    suffix = path.suffix.lower()
    if suffix == ".gpl":
        rgba = bool((colors[:, 3] < 255).any())
        lines = ["GIMP Palette", f"Name: {name}", "Columns: 8"] + (["Channels: RGBA"] if rgba else []) + ["#"]
        for (r, g, b, a), h in zip(colors.tolist(), to_hex(colors), strict=True):
            lines.append(f"{r:3d} {g:3d} {b:3d}" + (f" {a:3d}" if rgba else "") + f"\t{h}")
        atomic_write_text(path, "\n".join(lines) + "\n")
    elif suffix == ".json":
        atomic_write_text(path, json.dumps(to_hex(colors)) + "\n")
    elif suffix == ".hex":
        atomic_write_text(path, "".join(h[1:] + "\n" for h in to_hex(colors)))
    elif suffix == ".png":
        save_picture(colors[None], path)  # one row, one pixel per colour, in palette order
    else:
        raise BadInput(path, f"unknown palette format {suffix or '(no suffix)'!r}; use .gpl, .json, .hex or .png")
    return path
