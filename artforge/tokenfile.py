"""Token files: tokens plus the codec config that made them, in one ``.npz`` (no pickle).

Arrays: ``tokens`` (N, ...) integers, ``names`` (N,) str, ``codec`` 0-d str (codec config JSON),
``artforge_version`` 0-d str. Readable with plain ``numpy.load(path)``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artforge import __version__
from artforge.errors import ArtforgeError, BadInput, as_text
from artforge.fsutil import atomic_path, check_readable, is_pipe, read_pipe, writes_in_place


@dataclass
class TokenFile:
    tokens: np.ndarray
    names: list[str]
    codec: dict


def token_path(path: str | os.PathLike) -> Path:
    """Where a token file for ``path`` goes: ``.npz`` added when missing, except to a target written in
    place (``/dev/null``, a pipe, ``/dev/stdout``: :func:`artforge.fsutil.writes_in_place`)."""
    path = Path(path)
    if path.suffix != ".npz" and not writes_in_place(path):
        path = path.with_name(path.name + ".npz")
    return path


def save_tokens(path: str | os.PathLike, tokens: np.ndarray, names: list[str], codec_config: dict) -> Path:
    """Write a token file atomically, to :func:`token_path` of ``path``."""
    path = token_path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                tokens=np.asarray(tokens),
                names=np.asarray(names, dtype=str),
                codec=np.asarray(json.dumps(codec_config, sort_keys=True)),
                artforge_version=np.asarray(__version__),
            )
    return path


def load_tokens(path: str | os.PathLike, data: bytes | None = None) -> TokenFile:
    """Read a token file; anything else is a :class:`BadInput` naming the file. ``data``: its bytes,
    already read (from a pipe, which cannot be read twice); a pipe is otherwise read here."""
    path = Path(path)
    if data is None:
        if not path.exists():
            raise BadInput(path, "no such file")
        check_readable(path)  # is_zipfile says False for it: "not a token file" would be wrong
        if is_pipe(path):  # <(cat t.npz): no seek, so numpy reads it from memory
            data = read_pipe(path)
    source = io.BytesIO(data) if data is not None else path
    if not zipfile.is_zipfile(source):
        raise BadInput(path, "not an artforge token file (expected a .npz written by `artforge encode`)")
    try:
        with np.load(source, allow_pickle=False) as z:
            if "tokens" not in z or "codec" not in z:
                raise BadInput(path, "not an artforge token file (no 'tokens'/'codec' arrays)")
            tokens = z["tokens"]
            codec = json.loads(str(z["codec"]))
            stored = z["names"] if "names" in z else np.array([], str)
            if stored.ndim != 1:
                raise BadInput(path, f"'names' must be a list (1-d), got shape {stored.shape}")
            names = [as_text(n) for n in stored]
    except BadInput:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error, json.JSONDecodeError, EOFError) as exc:
        # zlib.error: a damaged compressed member (savez_compressed) fails while it is inflated
        raise BadInput(path, f"not a readable token file ({exc})") from None
    if tokens.dtype.kind not in "iu":
        raise BadInput(path, f"tokens are {tokens.dtype}, not integers")
    if tokens.ndim < 2 or 0 in tokens.shape:
        raise BadInput(path, f"tokens must be (N, ...) with at least one non-empty item, got shape {tokens.shape}")
    if len(names) != len(tokens):
        names = [f"{i:05d}" for i in range(len(tokens))]
    return TokenFile(tokens=tokens, names=names, codec=codec)


def load_token_codec(path: str | os.PathLike, data: bytes | None = None) -> tuple[TokenFile, Any]:
    """A token file and the codec it names, its tokens checked against that codec's vocabulary;
    every problem is a :class:`BadInput` naming the file. ``data`` as for :func:`load_tokens`."""
    from artforge.codecs import check_item_shape, codec_from_config
    from artforge.plugins import PluginError

    tf = load_tokens(path, data)
    try:
        codec = codec_from_config(tf.codec)
        tf.tokens = codec.check_tokens(tf.tokens, str(path))
        check_item_shape(codec, tf.tokens, str(path))
    except PluginError:
        raise
    except ArtforgeError as exc:
        raise BadInput(path, str(exc).removeprefix(f"{path}: ")) from None
    except (AttributeError, TypeError, ValueError) as exc:  # a stored config missing a part its codec needs
        raise BadInput(path, f"bad stored codec config ({type(exc).__name__}: {exc})") from None
    return tf, codec
