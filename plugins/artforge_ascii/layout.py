"""Laying a piece of text out on a fixed character grid: tabs, padding, centring, cropping, charset.

The piece is the bounding box of its non-space characters (blank edge lines, trailing spaces and
the common left indent do not count), centred in the grid with any odd cell below and to the
right. A text with no ink at all (a blank picture converted to ASCII) is a blank canvas instead,
as large as its lines. Laying out an already laid-out grid changes nothing, so encode -> decode ->
encode is a fixed point.
"""

from __future__ import annotations

from artforge.errors import ArtforgeError

PRINTABLE = "".join(chr(c) for c in range(32, 127))
#: named charsets for ``charset=NAME``
CHARSETS = {
    "printable": PRINTABLE,  # the 95 printable ASCII characters, space first
    "ramp": " .:-=+*#%@",  # a ten-step brightness ramp
}
TAB = 8
MAX_SIDE = 512


def check_charset(chars: str) -> str:
    """A usable charset: no duplicates, no line breaks or tabs, and the space (padding) included."""
    if not chars:
        raise ArtforgeError("empty charset")
    seen: set[str] = set()
    dups = []
    for ch in chars:
        if ch in seen and ch not in dups:
            dups.append(ch)
        seen.add(ch)
    if dups:
        raise ArtforgeError(f"charset has duplicate characters: {''.join(dups)!r}")
    bad = [ch for ch in chars if ch in "\n\r\t" or (ord(ch) < 32 or 127 <= ord(ch) < 160)]
    if bad:
        raise ArtforgeError(f"charset holds control characters {''.join(bad)!r}")
    if " " not in seen:
        raise ArtforgeError("charset must include the space (it pads the grid)")
    return chars


def check_side(n: int, what: str) -> int:
    if not 1 <= n <= MAX_SIDE:
        raise ArtforgeError(f"grid {what} {n} is out of range: 1 to {MAX_SIDE} cells a side")
    return n


def _locate(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index."""
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def normalise(text: str, allowed: frozenset[str], replace: str | None) -> str:
    """Line breaks to ``\\n``; characters outside the charset replaced, or an error naming the first."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    bad = set(text) - allowed - {"\n", "\t"}
    if not bad:
        return text
    if replace is not None:
        return text.translate({ord(ch): replace for ch in bad})
    index = min(text.find(ch) for ch in bad)
    ch = text[index]
    line, col = _locate(text, index)
    raise ArtforgeError(f"character {ch!r} (U+{ord(ch):04X}) at line {line}, column {col} is not in the charset "
                        "(add ,replace=? to the codec spec to replace such characters)")


def piece_lines(text: str) -> list[str]:
    """The piece's bounding box as lines (tabs expanded, trailing spaces, blank edges, indent removed)."""
    lines = [line.expandtabs(TAB).rstrip(" ") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    start = 0
    while start < len(lines) and not lines[start]:
        start += 1
    lines = lines[start:]
    if not lines:
        return []
    indent = min(len(line) - len(line.lstrip(" ")) for line in lines if line)
    return [line[indent:] for line in lines]


def blank_size(text: str) -> tuple[int, int]:
    """(width, height) of a text without ink: its longest line (tabs expanded) by its number of lines,
    a final line break ending the last line rather than opening another."""
    lines = text.removesuffix("\n").split("\n")
    return max(len(line.expandtabs(TAB)) for line in lines), len(lines)


def layout(text: str, allowed: frozenset[str], cols: int | None, rows: int | None, crop: bool = False,
           replace: str | None = None) -> list[str]:
    """``rows`` strings of exactly ``cols`` characters; ``cols``/``rows`` None fit the grid to the piece."""
    text = normalise(text, allowed, replace)
    lines = piece_lines(text)
    if not lines:
        # No ink: a blank canvas, which is what a blank picture converts to. It has no piece to
        # centre or crop, so any fixed grid takes it; fitting the grid to it takes its lines' size.
        w, h = blank_size(text)
        if not w:
            raise ArtforgeError("blank text: nothing but line breaks")
        if cols is None or rows is None:
            if h > MAX_SIDE or w > MAX_SIDE:
                raise ArtforgeError(f"blank text is {w}x{h} characters; grids are at most {MAX_SIDE} cells a side")
            cols, rows = w, h
        return [" " * cols] * rows
    h, w = len(lines), max(len(line) for line in lines)
    if cols is None or rows is None:
        if h > MAX_SIDE or w > MAX_SIDE:
            raise ArtforgeError(f"piece is {w}x{h} characters; grids are at most {MAX_SIDE} cells a side")
        cols, rows = w, h
    if h > rows or w > cols:
        if not crop:
            raise ArtforgeError(f"piece is {w}x{h} characters, larger than the {cols}x{rows} grid "
                                "(add ,crop to the codec spec to crop it to the grid's centre)")
        top, left = max(0, (h - rows) // 2), max(0, (w - cols) // 2)
        lines = [line[left : left + cols] for line in lines[top : top + rows]]
        lines = piece_lines("\n".join(lines))  # cropping can leave blank edges
        if not lines:  # the grid's centre holds no ink: what it holds is a blank canvas, as the docs say
            return [" " * cols] * rows
        h, w = len(lines), max(len(line) for line in lines)
    top, left = (rows - h) // 2, (cols - w) // 2
    blank = " " * cols
    body = [(" " * left + line).ljust(cols) for line in lines]
    return [blank] * top + body + [blank] * (rows - top - h)
