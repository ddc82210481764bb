"""The ``ascii`` codec: a piece of text on a fixed character grid, one token per cell.

Specs (options after the grid, separated by commas; see docs/plugins/ascii.md)::

    ascii                          the grid fits the text (for `artforge render art.txt`)
    ascii:64x64                    64 columns x 64 rows, printable ASCII (95 characters)
    ascii:80x40,crop,replace=?     crop pieces larger than the grid; unknown characters become '?'
    ascii:64x64,charset=ramp       a named charset (printable, ramp)
    ascii:64x64,chars=\\s.:oO@      a literal charset (escapes: \\s space, \\, comma, \\\\ backslash)
    ascii:64x64,font=F.ttf,px=14   another monospace font, or another font size, for pictures

Tokens are charset indices, ``(rows, cols)`` per piece. ``decode`` draws the glyph atlas (black
ink on white), exactly what the torch renderer draws for one-hot input.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from artforge.codecs import Codec
from artforge.codecs import escape_spec as escape
from artforge.codecs import split_spec_options as split_options
from artforge.codecs import unescape_spec as unescape
from artforge.errors import ArtforgeError, BadInput
from artforge.fsutil import read_input_bytes
from artforge.imageio import folder_problem
from artforge_ascii.atlas import DEFAULT_PX, GlyphAtlas, build_atlas, resolve_font
from artforge_ascii.layout import CHARSETS, PRINTABLE, check_charset, check_side, layout, piece_lines

_GRID = re.compile(r"^(\d+)x(\d+)$")


class AsciiCodec(Codec):
    name = "ascii"
    description = "Text on a character grid, one token per cell, drawn with a monospace glyph atlas"
    spec_help = "ascii (fit the text) or ascii:COLSxROWS, then options: crop, replace=C, charset=NAME, chars=..., " \
        "font=PATH, px=N; e.g. ascii:64x64,crop"
    input_kind = "text"
    input_suffixes = {".txt"}
    native_suffixes = {".txt"}

    def __init__(self, cols: int | None = None, rows: int | None = None, chars: str = PRINTABLE,
                 crop: bool = False, replace: str | None = None, font: str | None = None, px: int = DEFAULT_PX):
        if (cols is None) != (rows is None):
            raise ArtforgeError("give both grid sides, COLSxROWS, or neither")
        self.cols = None if cols is None else check_side(int(cols), "width")
        self.rows = None if rows is None else check_side(int(rows), "height")
        self.chars = check_charset(chars)
        self.allowed = frozenset(chars)
        if replace is not None and (len(replace) != 1 or replace not in self.allowed):
            raise ArtforgeError(f"replace={replace!r}: the replacement must be one character of the charset")
        if not 4 <= int(px) <= 128:
            raise ArtforgeError(f"px={px}: the font size must be 4-128 pixels")
        self.crop, self.replace, self.px = bool(crop), replace, int(px)
        self.font = None if font in (None, "") else str(resolve_font(font))
        self.vocab_size = len(chars)
        self.space = chars.index(" ")
        cps = np.array([ord(c) for c in chars], np.int64)
        self._order = np.argsort(cps)
        self._sorted = cps[self._order]
        self.spec = self._canonical()
        if self.font is not None:
            self.atlas  # noqa: B018 - a font that is not a font fails here, at the spec, in one line

    # -- spec and config ------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, args: str) -> AsciiCodec:
        kw: dict[str, Any] = {}
        for i, opt in enumerate(split_options(args)):
            m = _GRID.match(opt)
            if m and i == 0:
                kw["cols"], kw["rows"] = int(m.group(1)), int(m.group(2))
                continue
            key, eq, value = opt.partition("=")
            if key == "crop" and not eq:
                kw["crop"] = True
            elif key == "replace" and eq:
                kw["replace"] = unescape(value)
            elif key == "charset" and eq:
                if value not in CHARSETS:
                    raise ArtforgeError(f"unknown charset {value!r}; named charsets: {', '.join(CHARSETS)} "
                                        "(or chars=LITERAL)")
                kw["chars"] = CHARSETS[value]
            elif key == "chars" and eq:
                kw["chars"] = unescape(value)
            elif key == "font" and eq:
                kw["font"] = unescape(value)
            elif key == "px" and eq and value.isdigit():
                kw["px"] = int(value)
            else:
                raise ArtforgeError(f"bad codec spec 'ascii:{args}': cannot read {opt!r}; expected COLSxROWS first, "
                                    "then crop, replace=C, charset=NAME, chars=..., font=PATH, px=N")
        return cls(**kw)

    def _canonical(self) -> str:
        opts = [] if self.cols is None else [f"{self.cols}x{self.rows}"]
        if self.crop:
            opts.append("crop")
        if self.replace is not None:
            opts.append(f"replace={escape(self.replace)}")
        named = next((k for k, v in CHARSETS.items() if v == self.chars), None)
        if named and named != "printable":
            opts.append(f"charset={named}")
        elif not named:
            opts.append(f"chars={escape(self.chars)}")
        if self.font is not None:
            opts.append(f"font={escape(self.font)}")
        if self.px != DEFAULT_PX:
            opts.append(f"px={self.px}")
        return "ascii" + (":" + ",".join(opts) if opts else "")

    def config(self) -> dict:
        return {"codec": self.name, "spec": self.spec, "args": self.spec[len(self.name):].lstrip(":"),
                "cols": self.cols, "rows": self.rows, "chars": self.chars, "crop": self.crop,
                "replace": self.replace, "font": self.font, "px": self.px}

    @classmethod
    def from_config(cls, config: dict) -> AsciiCodec:
        if "chars" not in config:
            return cls.from_spec(config.get("args", ""))
        return cls(config.get("cols"), config.get("rows"), config["chars"], config.get("crop", False),
                   config.get("replace"), config.get("font"), config.get("px", DEFAULT_PX))

    @property
    def atlas(self) -> GlyphAtlas:
        return build_atlas(self.chars, self.font, self.px)

    @property
    def token_shape(self) -> tuple[int, int] | None:
        return None if self.cols is None else (self.rows, self.cols)

    def check_tokens(self, tokens: np.ndarray, source: str = "tokens") -> np.ndarray:
        """The vocabulary check, and for a codec with a grid, that the grids are that size."""
        tokens = super().check_tokens(tokens, source)
        if self.token_shape and tokens.ndim >= 2 and tokens.shape[-2:] != self.token_shape:
            rows, cols = tokens.shape[-2:]
            raise ArtforgeError(f"{source}: grids of {cols}x{rows} characters do not fit codec {self.spec}")
        return tokens

    # -- reading --------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> str:
        """A text file as str; binary, non-UTF-8 and empty files (nothing but line breaks) are
        BadInput. Spaces alone are a blank canvas (see ``layout``), not an empty file."""
        p = Path(path)
        try:
            data = read_input_bytes(p)  # a pipe's size is capped
        except FileNotFoundError:
            raise BadInput(p, "no such file") from None
        except IsADirectoryError:
            raise BadInput(p, folder_problem(p, "a text file")) from None
        except OSError as exc:
            raise BadInput(p, f"cannot read: {exc.strerror or exc}") from None
        if not data:
            raise BadInput(p, "empty file (0 bytes)")
        if b"\x00" in data:
            raise BadInput(p, "binary file (it holds NUL bytes), not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadInput(p, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
        if not text.strip("\r\n"):
            raise BadInput(p, "empty file (only line breaks)")
        return text

    def read(self, path: str | os.PathLike, size: int | None = None, resample: str = "lanczos") -> str:
        text = self.load(path)
        try:
            return self.prepare(text, size, resample)
        except BadInput:
            raise
        except ArtforgeError as exc:
            raise BadInput(path, str(exc)) from None

    def check_read_options(self, size: int | None = None, resample: str = "lanczos") -> None:
        if size is not None:
            raise ArtforgeError("--size fits images; text codecs take the grid from the spec (e.g. ascii:64x64)")

    def prepare(self, payload: Any, size: int | None = None, resample: str = "lanczos") -> str:
        """The piece laid out on the grid: ``rows`` lines of ``cols`` characters joined by newlines."""
        self.check_read_options(size, resample)
        if not isinstance(payload, str):
            raise ArtforgeError(f"text codec {self.spec} takes text, not {type(payload).__name__}")
        return "\n".join(layout(payload, self.allowed, self.cols, self.rows, self.crop, self.replace))

    def stack(self, items: list[Any]) -> list[str]:
        grids = [self.prepare(t) for t in items]
        shapes = sorted({(g.count("\n") + 1, g.index("\n") if "\n" in g else len(g)) for g in grids})
        if len(shapes) > 1:
            sizes = ", ".join(f"{w}x{h}" for h, w in shapes[:4])
            raise ArtforgeError(f"texts have different sizes ({sizes}); give a grid, e.g. --codec ascii:64x64")
        return grids

    # -- the work -------------------------------------------------------------------------------
    def encode(self, batch: Any) -> np.ndarray:
        """Texts (a str or a list of str) -> ``(N, rows, cols)`` charset indices."""
        grids = self.stack([batch] if isinstance(batch, str) else list(batch))
        if not grids:
            shape = self.token_shape or (0, 0)
            return np.zeros((0, *shape), self.token_dtype)
        rows = grids[0].count("\n") + 1
        flat = "".join(grids).replace("\n", "")
        cps = np.frombuffer(flat.encode("utf-32-le"), np.uint32).astype(np.int64)
        tokens = self._order[np.searchsorted(self._sorted, cps)]
        return tokens.reshape(len(grids), rows, -1).astype(self.token_dtype)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """``(N, rows, cols)`` tokens -> ``(N, rows*h, cols*w, 4)`` RGBA: black glyphs on white."""
        tokens = self.check_tokens(tokens)
        single = tokens.ndim == 2
        t = tokens[None] if single else tokens
        if t.ndim != 3:
            raise ArtforgeError(f"ascii tokens must be (N, rows, cols), got shape {tokens.shape}")
        paper = self.atlas.paper_u8()
        n, r, c = t.shape
        h, w = paper.shape[1:]
        grey = paper[t.astype(np.int64)].transpose(0, 1, 3, 2, 4).reshape(n, r * h, c * w)
        out = np.empty((n, r * h, c * w, 4), np.uint8)
        out[..., :3] = grey[..., None]
        out[..., 3] = 255
        return out[0] if single else out

    def to_text(self, tokens: np.ndarray) -> str:
        """One ``(rows, cols)`` grid as text: every row, every cell (no trimming)."""
        t = np.asarray(self.check_tokens(tokens))
        if t.ndim == 3 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 2:
            raise ArtforgeError(f"to_text takes one (rows, cols) grid, got shape {t.shape}")
        table = np.array(list(self.chars))
        return "\n".join("".join(row) for row in table[t.astype(np.int64)])

    def piece_text(self, tokens: np.ndarray) -> str:
        """The piece only: blank edge rows, trailing spaces and the common indent trimmed. A blank
        grid has nothing to trim to and stays whole (rows of spaces), so its size survives."""
        text = self.to_text(tokens)
        return "\n".join(piece_lines(text)) or text

    def write_native(self, tokens: np.ndarray, path: str | os.PathLike) -> None:
        """One piece as a .txt file (``piece_text``). Reading it back with the same codec gives the
        same grid, with the piece centred in it as ``layout`` centres every piece."""
        from artforge.fsutil import atomic_write_text

        atomic_write_text(path, self.piece_text(tokens) + "\n")

    def write_texts(self, tokens: np.ndarray, path: str | os.PathLike) -> None:
        """Many grids in one .txt file (``artforge sample``): each keeps all its rows, so the pieces
        stay where the model put them, with trailing spaces stripped; a blank line separates them."""
        from artforge.fsutil import atomic_write_text

        grids = ["\n".join(line.rstrip(" ") for line in self.to_text(t).split("\n")) for t in np.asarray(tokens)]
        atomic_write_text(path, "\n\n".join(grids) + "\n")

    def convert(self, images: np.ndarray, **options: Any) -> np.ndarray:
        """Any RGBA pictures -> tokens, matching each cell's pixels against the glyph atlas."""
        from artforge_ascii.convert import image_to_tokens

        edges = options.pop("edges", None)
        if options:
            raise ArtforgeError(f"codec {self.spec} has no option(s) {', '.join('--' + k for k in options)}")
        if edges is not None and not 0.0 <= float(edges) <= 1.0:
            raise ArtforgeError(f"--edges must be between 0 and 1, got {edges}")
        return image_to_tokens(np.asarray(images), self.atlas, self.cols, self.rows,
                               edges=0.0 if edges is None else float(edges)).astype(self.token_dtype)
