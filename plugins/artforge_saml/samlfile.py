"""Reading and writing PSO2 Symbol Art ``.saml`` files (the XML the community editors share).

A file is ``<sa width=.. height=..>`` holding ``<layer>`` elements, possibly inside ``<g>``
groups. Each layer draws one symbol (a texture, by its game id in ``type``) on a quad given by
its four corners ``lt lb rt rb`` (x, y in canvas units, origin at the canvas centre, y down),
tinted by ``color`` (``#rrggbb``) at opacity ``alpha`` (0..1; the game keeps 8 steps).

Here a piece is an integer array, one row per visible layer, in file order (the first layer is
drawn in front, like the top of the game's layer list)::

    symbol id, r, g, b, alpha step 0..7, ltx, lty, lbx, lby, rtx, rty, rbx, rby

Hidden layers and groups are left out (the tokens hold what you see). Coordinates are clamped to
the game's range -128..127 (its own .sar format stores a byte per coordinate).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artforge.errors import BadInput
from artforge.fsutil import read_input_bytes

FIELDS = ("symbol", "r", "g", "b", "alpha", "ltx", "lty", "lbx", "lby", "rtx", "rty", "rbx", "rby")
CORNERS = FIELDS[5:]
COORD_MIN, COORD_MAX = -128, 127
ALPHA_STEPS = 7
MAX_SYMBOL = 2046  # the game keeps symbol ids in 10 bits; tokens store id + 1 (0 = empty slot)
_COLOR = re.compile(r"^#?([0-9a-fA-F]{6})$")


@dataclass
class SymbolArt:
    """One parsed file: its layers (``(n, 13)`` int64, see the module doc) and what was left out."""

    layers: np.ndarray
    name: str = ""
    width: int = 192
    height: int = 96
    hidden: int = 0
    clamped: int = 0


def _number(el: ET.Element, key: str, where: str, default: float | None = None) -> float:
    raw = el.get(key)
    if raw is None:
        if default is None:
            raise ValueError(f"{where}: missing attribute {key!r}")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{where}: {key}={raw!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{where}: {key}={raw!r} is not a finite number")
    return value


def _visible(el: ET.Element) -> bool:
    return el.get("visible", "true").strip().lower() not in ("false", "0")


MAX_GROUP_DEPTH = 64


def parse_saml(data: bytes | str, source: str = "<saml>") -> SymbolArt:
    """Parse a .saml document; raise :class:`BadInput` naming ``source`` and the problem."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise BadInput(source, f"not valid XML ({exc})") from None
    if root.tag != "sa":
        raise BadInput(source, f"not a Symbol Art file (root element <{root.tag}>, expected <sa>)")
    rows: list[list[int]] = []
    hidden = clamped = 0
    index = 0

    def walk(parent: ET.Element, shown: bool, depth: int = 0) -> None:
        nonlocal hidden, clamped, index
        if depth > MAX_GROUP_DEPTH:  # editors nest a few levels; thousands would overflow the stack
            raise ValueError(f"groups nested deeper than {MAX_GROUP_DEPTH} levels")
        for el in parent:
            if el.tag == "g":
                walk(el, shown and _visible(el), depth + 1)
                continue
            if el.tag != "layer":
                if el.tag == "bitmapLayer":
                    hidden += 1  # an editor's tracing image, not part of the art
                continue
            where = f"layer {index + 1}"
            index += 1
            if not (shown and _visible(el)):
                hidden += 1
                continue
            symbol = int(_number(el, "type", where))
            if not 0 <= symbol <= MAX_SYMBOL:
                raise ValueError(f"{where}: symbol type {symbol} outside 0..{MAX_SYMBOL}")
            m = _COLOR.match((el.get("color") or "").strip())
            if not m:
                raise ValueError(f"{where}: color={el.get('color')!r} is not #rrggbb")
            rgb = [int(m.group(1)[i : i + 2], 16) for i in (0, 2, 4)]
            alpha = _number(el, "alpha", where, 1.0)
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"{where}: alpha={alpha} outside 0..1")
            coords = [round(_number(el, k, where)) for k in CORNERS]
            clipped = [min(max(c, COORD_MIN), COORD_MAX) for c in coords]
            clamped += clipped != coords
            rows.append([symbol, *rgb, round(alpha * ALPHA_STEPS), *clipped])

    try:
        walk(root, True)
        width = int(_number(root, "width", "<sa>", 192))
        height = int(_number(root, "height", "<sa>", 96))
    except ValueError as exc:
        raise BadInput(source, str(exc)) from None
    layers = np.array(rows, np.int64).reshape(-1, len(FIELDS))
    return SymbolArt(layers, root.get("name", ""), width, height, hidden, clamped)


def read_saml(path: str | os.PathLike) -> SymbolArt:
    p = Path(path)
    try:
        data = read_input_bytes(p)  # a pipe's size is capped
    except OSError as exc:
        raise BadInput(p, f"cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise BadInput(p, "empty file")
    if data.startswith((b"\x89PNG", b"\xff\xd8", b"GIF8", b"RIFF", b"BM")):
        raise BadInput(p, "a picture, not a .saml file (`artforge convert -c saml ...` turns pictures into Symbol Art)")
    return parse_saml(data, str(p))


def format_saml(layers: np.ndarray, name: str = "artforge", width: int = 192, height: int = 96) -> str:
    """A .saml document for ``(n, 13)`` layer rows (rows with symbol -1 are skipped)."""
    root = ET.Element("sa", name=name, visible="true", version="4", author="0",
                      width=str(width), height=str(height), sound="1")
    for i, row in enumerate(np.asarray(layers, np.int64)):
        if row[0] < 0:
            continue
        alpha = f"{row[4] / ALPHA_STEPS:.6f}".rstrip("0").rstrip(".") or "0"
        attrs = {"name": f"Symbol {i}", "visible": "true", "type": str(row[0]),
                 "color": "#{:02x}{:02x}{:02x}".format(*row[1:4]), "alpha": alpha}
        attrs.update({k: str(v) for k, v in zip(CORNERS, row[5:], strict=True)})
        ET.SubElement(root, "layer", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
