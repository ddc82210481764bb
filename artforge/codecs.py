"""The codec contract: image (or text) <-> integer tokens, exact and vectorised.

A spec string names a codec: ``FAMILY`` followed by optional arguments, either glued on
(``hsv544``) or after a colon (``palette:auto/32``, ``ascii:64x64``). The registered family with
the longest matching prefix gets the rest of the string.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from artforge.errors import ArtforgeError, ContractError, first_line


class Codec:
    """Base class for codecs. Subclasses set ``name`` and implement the methods below.

    Images travel as ``(N, H, W, 4)`` uint8 straight RGBA arrays; tokens as ``(N, *shape)``
    integer arrays with values in ``[0, vocab_size)``.
    """

    name: ClassVar[str] = ""
    #: one line for ``artforge codecs``
    description: ClassVar[str] = ""
    #: how specs of this family look, e.g. "hsvHSV (bit widths 1-8), e.g. hsv544"
    spec_help: ClassVar[str] = ""
    #: "image" codecs encode RGBA arrays; "text" codecs encode lists of strings
    input_kind: ClassVar[str] = "image"

    #: file suffixes read from folders (None: the image suffixes)
    input_suffixes: ClassVar[set[str] | None] = None
    #: suffixes of this codec's own file format (``artforge render art.txt`` picks the codec by them)
    native_suffixes: ClassVar[set[str]] = set()
    #: how many axes one item's tokens have where the input decides their lengths (2: an image's
    #: H x W grid), so a token file or cache with items of another rank is refused naming the file;
    #: None: not declared (``token_shape``, where a codec has one, says it all)
    token_ndim: ClassVar[int | None] = None

    spec: str
    vocab_size: int

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, args: str) -> Codec:
        """Build from the part of the spec after the family name (may be "")."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> Codec:
        """Rebuild from :meth:`config` (stored in caches, checkpoints and token files)."""
        return cls.from_spec(config.get("args", ""))

    def config(self) -> dict:
        """Plain JSON that rebuilds this codec exactly."""
        return {"codec": self.name, "spec": self.spec, "args": self.spec[len(self.name) :].lstrip(":")}

    # -- fitting (codecs whose vocabulary comes from data, e.g. palette:auto) -------------------
    @property
    def needs_fit(self) -> bool:
        return False

    def fit(self, batches: Iterable[Any]) -> None:
        """Learn from a stream of input batches (only called when ``needs_fit``)."""

    # -- reading inputs -------------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> Any:
        """Read one input file into a raw payload (RGBA array, or str for text codecs).

        Raises :class:`BadInput` naming the file and the problem.
        """
        from artforge.imageio import load_image

        return load_image(path)

    def check_read_options(self, size: int | None = None, resample: str = "lanczos") -> None:
        """Refuse reading options this codec cannot apply (``--size`` for a text codec) with one
        :class:`ArtforgeError`, before any input is read; the default takes them all."""

    def prepare(self, payload: Any, size: int | None = None, resample: str = "lanczos") -> Any:
        """Turn a payload into an item ready to stack: fit images into ``size x size``."""
        from artforge.imageio import fit_square

        return fit_square(payload, size, resample) if size else payload

    def read(self, path: str | os.PathLike, size: int | None = None, resample: str = "lanczos") -> Any:
        return self.prepare(self.load(path), size, resample)

    def stack(self, items: list[Any]) -> Any:
        """Make one encodable batch of prepared items."""
        shapes = sorted({tuple(x.shape) for x in items})
        if len(shapes) > 1:
            sizes = ", ".join(f"{s[1]}x{s[0]}" for s in shapes[:4])
            raise ArtforgeError(f"inputs have different sizes ({sizes}); pass --size N to fit them")
        return np.stack(items)

    # -- converting arbitrary pictures (artforge convert) ------------------------------------------
    def convert(self, images: np.ndarray, **options: Any) -> np.ndarray:
        """Turn (N, H, W, 4) RGBA pictures into tokens, approximating where needed.

        ``options`` come from ``artforge convert`` flags (``dither``, ``edges``); a codec that
        does not know an option must raise :class:`ArtforgeError` naming it.
        """
        if options:
            raise ArtforgeError(f"codec {self.spec} has no option(s) {', '.join('--' + k for k in options)}")
        return self.encode(images)

    def convert_report(self) -> str | None:
        """One line about the last :meth:`convert` call (say, a fit's error), which `artforge
        convert` prints after each picture; None (the default) prints nothing."""
        return None

    def write_native(self, tokens: np.ndarray, path: str | os.PathLike) -> None:
        """Write one item in the codec's own file format (e.g. .txt); default: not supported."""
        raise ArtforgeError(f"codec {self.spec} has no file format of its own; write .png or .npz")

    # -- the work -------------------------------------------------------------------------------
    def encode(self, batch: Any) -> np.ndarray:
        """Inputs (RGBA uint8 array, or list of str for text codecs) -> integer tokens."""
        raise NotImplementedError

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens -> ``(N, H, W, 4)`` uint8 RGBA pictures (for previews, grids, PNG files)."""
        raise NotImplementedError

    @property
    def token_dtype(self) -> np.dtype:
        return smallest_uint(self.vocab_size)

    def check_tokens(self, tokens: np.ndarray, source: str = "tokens") -> np.ndarray:
        tokens = np.asarray(tokens)
        if tokens.dtype.kind not in "iu":
            raise ArtforgeError(f"{source}: tokens must be integers, got {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ArtforgeError(
                f"{source}: token values {tokens.min()}..{tokens.max()} fall outside codec "
                f"{self.spec}'s vocabulary of {self.vocab_size}"
            )
        return tokens

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec} vocab={self.vocab_size}>"


def declared_shape(codec: Codec) -> tuple[int, ...] | None:
    """The shape of one item's tokens when the codec fixes it (an attribute or property ``token_shape``,
    e.g. ``ascii:80x40`` or ``saml``), else None: the shape then follows the input."""
    shape = getattr(codec, "token_shape", None)
    if isinstance(shape, tuple | list) and shape and all(isinstance(s, int) for s in shape):
        return tuple(shape)
    return None


def check_item_shape(codec: Codec, tokens: np.ndarray, source: str) -> None:
    """Refuse stored tokens (a token file, a cache) whose items do not have the codec's ``token_shape``,
    or, where it has none, its ``token_ndim`` axes: :class:`ArtforgeError` naming ``source``."""
    shape, item = declared_shape(codec), tuple(tokens.shape[1:])
    if shape is not None and item != shape:
        raise ArtforgeError(f"{source}: items of shape {item} do not fit codec {codec.spec} (its items are {shape})")
    ndim = codec.token_ndim if shape is None and isinstance(codec.token_ndim, int) else None
    if ndim is not None and len(item) != ndim:
        raise ArtforgeError(f"{source}: items of shape {item} do not fit codec {codec.spec} (its items have "
                            f"{ndim} axes)")


def checked_tokens(tokens: Any, codec: Codec, who: str, n: int | None = None,
                   shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Tokens that plugin code returned (a codec's encode or convert, a model's sample), checked once per
    call before anything writes or decodes them, so a bug is blamed on ``who`` ("codec gray's encode")
    and not on a file made from them later: an integer array of ``n`` items (when given), each of
    ``shape`` (when given), values in ``[0, vocab_size)``. Raises :class:`ContractError`."""
    try:
        arr = np.asarray(tokens)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise ContractError(f"{who} returned {type(tokens).__name__}, not an array ({first_line(exc, 120)})") from None
    if arr.dtype.kind not in "iu":
        raise ContractError(f"{who} returned {arr.dtype} tokens; tokens are integers")
    want = f"({n if n is not None else 'N'}, {', '.join(map(str, shape)) if shape else '...'})"
    if arr.ndim < 2 or n is not None and len(arr) != n:
        items = f" for {n} item{'' if n == 1 else 's'}" if n is not None else ""
        raise ContractError(f"{who} returned shape {arr.shape}{items}; expected {want}")
    if shape is not None and tuple(arr.shape[1:]) != tuple(shape) or 0 in arr.shape[1:]:
        raise ContractError(f"{who} returned shape {arr.shape}; expected {want}")
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= codec.vocab_size:
            raise ContractError(f"{who} returned token values {lo}..{hi}, outside codec {codec.spec}'s "
                                f"vocabulary of {codec.vocab_size}")
    return arr


def check_encoded(codec: Codec, tokens: Any, n: int, method: str = "encode") -> np.ndarray:
    """What ``codec.encode`` (or ``convert``) returned for ``n`` items: see :func:`checked_tokens`."""
    return checked_tokens(tokens, codec, f"codec {codec.spec}'s {method}", n, declared_shape(codec))


def decode_checked(codec: Codec, tokens: np.ndarray) -> np.ndarray:
    """``codec.decode`` of tokens that already passed the checks. The codec's own ArtforgeError passes
    through (it judged the tokens); a crash, or anything but ``(N, H, W, 3|4)`` uint8 pictures, is the
    codec's bug: a :class:`ContractError` naming it."""
    who = f"codec {codec.spec}'s decode"
    try:
        images = codec.decode(tokens)
    except (ArtforgeError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - any crash on valid tokens is the codec's
        raise ContractError(f"{who} failed ({type(exc).__name__}: {first_line(exc, 160)}) on tokens of shape "
                            f"{tokens.shape}") from None
    want = f"expected ({len(tokens)}, H, W, 4) uint8 RGBA pictures"
    if not isinstance(images, np.ndarray):
        raise ContractError(f"{who} returned {type(images).__name__}; {want}")
    if images.ndim != 4 or len(images) != len(tokens) or images.shape[-1] not in (3, 4):
        raise ContractError(f"{who} returned shape {images.shape} for tokens of shape {tokens.shape}; {want}")
    if images.dtype != np.uint8:
        raise ContractError(f"{who} returned {images.dtype} pictures; {want}")
    return images


#: backslash escapes in codec spec options (a charset, a path): `\s` space, `\,` comma, `\\` backslash
SPEC_ESCAPES = {"s": " ", ",": ",", "\\": "\\"}


def split_spec_options(args: str) -> list[str]:
    """Split a spec's arguments (``64x64,crop,chars=\\s.\\,:``) on the commas that are not escaped
    with a backslash; escapes are kept for :func:`unescape_spec`. Empty options are dropped."""
    parts, cur, i = [], "", 0
    while i < len(args):
        if args[i] == "\\" and i + 1 < len(args):
            cur += args[i : i + 2]
            i += 2
            continue
        if args[i] == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += args[i]
        i += 1
    parts.append(cur)
    return [p for p in parts if p != ""]


def unescape_spec(value: str) -> str:
    """An option's value with its escapes (:data:`SPEC_ESCAPES`) resolved; another escape is an error."""
    out, i = "", 0
    while i < len(value):
        if value[i] == "\\":
            nxt = value[i + 1 : i + 2]
            if nxt not in SPEC_ESCAPES:
                raise ArtforgeError(f"unknown escape '\\{nxt}' in codec spec (use \\s, \\, or \\\\)")
            out += SPEC_ESCAPES[nxt]
            i += 2
        else:
            out += value[i]
            i += 1
    return out


def escape_spec(value: str) -> str:
    """The inverse of :func:`unescape_spec`, for canonical specs: ``unescape_spec(escape_spec(v)) == v``,
    and the result holds no bare comma, space or backslash."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\s")


def smallest_uint(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds token values ``0 .. vocab_size-1``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def get_codec(spec: str) -> Codec:
    """Build the codec a spec string names; unknown specs list the known families."""
    from artforge.plugins import registry

    spec = spec.strip()
    reg = registry("codecs")
    # every registered name, loadable or not: a named codec whose plugin fails to import gets
    # that import error below, not "unknown codec"
    families = [*reg.names(), *reg.conflicts]
    matches = [f for f in families if spec == f or spec.startswith(f)]
    if not matches:
        refused = [f for f in reg.refused if spec.startswith(f)]
        if refused:  # a family whose registration was skipped: say why, not "unknown"
            reg.get(max(refused, key=len))
        known = "; ".join(f"{n} ({e.obj.spec_help or e.obj.description})" for n, e in reg.loaded())
        raise ArtforgeError(f"unknown codec {spec!r}; known codecs: {known or 'none'}")
    family = max(matches, key=len)
    cls = reg.get(family).obj  # raises for conflicts
    args = spec[len(family) :]
    if args.startswith(":"):
        args = args[1:]
    try:
        return cls.from_spec(args)
    except ArtforgeError:
        raise
    except (ValueError, TypeError) as exc:
        raise ArtforgeError(f"bad codec spec {spec!r}: {exc}") from None


def codec_from_config(config: dict | str) -> Codec:
    """Rebuild a codec from its stored config (a dict or its JSON text)."""
    if isinstance(config, str | bytes):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ArtforgeError(f"stored codec config is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("codec"), str):
        raise ArtforgeError(f"stored codec config {str(config)[:60]!r} does not name a codec")
    from artforge.plugins import registry

    name = config["codec"]
    reg = registry("codecs")
    if name not in reg and name not in reg.conflicts and name not in reg.refused:
        raise ArtforgeError(
            f"codec {name!r} is not installed (known: {', '.join(reg.names()) or 'none'}); "
            "install the plugin that provides it"
        )
    try:
        return reg.get(name).obj.from_config(config)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        args = config.get("args", "")
        if not isinstance(args, str):  # the default from_config parses it as spec text: 544 fails on str methods
            raise ArtforgeError(f"bad stored codec config for {name!r}: 'args' must be text (the spec after the "
                                f"codec name), not {json.dumps(args)[:40]}") from None
        raise ArtforgeError(f"bad stored codec config for {name!r}: {exc}") from None


def codec_matches(a: dict, b: dict) -> bool:
    """Whether two codec configs describe the same codec."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
