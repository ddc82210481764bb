"""Data sources: what ``artforge data build SOURCE`` can read, item by item.

A source is a folder (searched recursively), a glob, an ``.npz`` of images (``images`` array,
optional ``names``), a ``.jsonl``/``.jsonl.gz`` of texts (``text`` and ``name`` fields), a
single file, or ``builtin:NAME`` (a data set a plugin registered). Sources hand out light
references; worker processes turn them into payloads, so nothing holds the whole set in memory.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artforge.errors import ArtforgeError, BadInput, as_text, first_line

#: How sources are read, as a number in every cache's fingerprint: a cache built by a reader of another
#: version is rebuilt. Bump it whenever the reading of a source changes what a cache would hold (which
#: items, their names, their pixels or texts): e.g. 1 is the reader that decodes an .npz's bytes names
#: (not "b'cat'") and skips a .jsonl "name": null (not the name "None").
READER_VERSION = 1


@dataclass(frozen=True)
class Ref:
    """One item of a source: its name and how a worker gets its payload."""

    name: str
    where: Any  # a file path (str), an index into an npz, or the text itself
    folder: str = ""  # parent folder relative to the source root ("" when none)


def storable_name(name: str) -> str:
    """An item name from inside a file (an .npz's ``names``, a .jsonl's ``"name"``) as text a cache can
    store: NUL (which HDF5 strings cannot hold) and lone surrogates (which are not UTF-8) become escapes,
    as bytes that are not UTF-8 in file names do (:func:`artforge.imageio.readable_name`)."""
    return name.replace("\0", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


class Source:
    kind = "image"  # "image" payloads are RGBA arrays, "text" payloads are str
    description = ""

    def refs(self) -> list[Ref]:
        raise NotImplementedError

    def fingerprint_parts(self) -> list:
        raise NotImplementedError

    def payload(self, ref: Ref, codec) -> Any:
        raise NotImplementedError

    def warm(self) -> None:
        """Load shared state before worker processes fork (they then share it copy-on-write)."""

    def paths(self) -> list[Path]:
        """The files this source reads, which no output may replace."""
        return [self.path] if isinstance(getattr(self, "path", None), Path) else []


def _stat(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


class FileSource(Source):
    """Files from a folder (recursive), a glob, or one file; read with the codec's ``load``."""

    def __init__(self, files: list[tuple[Path, str, str]], description: str, kind: str):
        self.files = files
        self.description = description
        self.kind = kind

    def refs(self) -> list[Ref]:
        return [Ref(name, str(path), folder) for path, name, folder in self.files]

    def paths(self) -> list[Path]:
        return [path for path, _, _ in self.files]

    def fingerprint_parts(self) -> list:
        parts = []
        for path, name, _ in self.files:
            try:
                parts.append([name, *_stat(path)[1:]])
            except OSError:
                parts.append([name, "unreadable"])
        return parts

    def payload(self, ref: Ref, codec) -> Any:
        return codec.load(ref.where)


_npz_cache: dict[str, dict[str, np.ndarray]] = {}


def _value_range(images: np.ndarray, path: Path) -> float:
    """The scale (top value) of an ``images`` array, one for the whole array so that every image is
    read alike: 255 for integers, which must lie in 0..255 (wider ones would be cut at 255); for
    floats 1 (values a little outside 0..1, as float resampling gives, are clipped) unless a finite
    value passes 2, when the array is on the 0-255 scale."""
    if images.dtype == bool or images.dtype == np.uint8:
        return 255.0
    lo, hi = np.inf, -np.inf
    step = max(1, (1 << 24) // max(1, images[0].size))  # about 16M values at a time
    for i in range(0, len(images), step):
        block = images[i : i + step]
        if block.dtype.kind == "f":
            block = block[np.isfinite(block)]  # NaN and inf make that one image a skipped item
        if block.size:
            lo, hi = min(lo, block.min().item()), max(hi, block.max().item())
    if images.dtype.kind == "f":
        return 255.0 if hi > 2.0 else 1.0
    if lo < 0 or hi > 255:
        raise BadInput(path, f"'images' holds values {lo}..{hi}; integer images are on the 0-255 scale "
                             "(floats on 0-1)")
    return 255.0


def _rgba(arr: np.ndarray, top: float = 255.0) -> np.ndarray:
    """An image array of any common layout, its values on a ``top`` scale -> (H, W, 4) uint8 RGBA."""
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all():
                raise ValueError("the image holds NaN or infinite values")
            arr = arr * (255.0 / top) if top != 255.0 else arr
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[-1]
    if c == 1:
        arr = np.concatenate([arr, arr, arr, np.full_like(arr, 255)], -1)
    elif c == 2:
        arr = np.concatenate([arr[..., :1]] * 3 + [arr[..., 1:]], -1)
    elif c == 3:
        arr = np.concatenate([arr, np.full_like(arr[..., :1], 255)], -1)
    elif c != 4:
        raise ValueError(f"unsupported image array shape {arr.shape}")
    return arr


def _check_zip(path: Path) -> None:
    """An .npz is a zip archive: anything else np.load would take for a lone .npy array or, refusing it,
    for pickled data that allow_pickle would load, advice that must not reach the user."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            return
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror or exc}") from None
    if head == b"\x93NUMPY":
        raise BadInput(path, "is one .npy array, not an .npz archive; save it with np.savez(path, images=...)")
    raise BadInput(path, "not an .npz (not a zip archive, or one cut short)" if head else "empty file (0 bytes)")


def _names(names, path: Path) -> list[str]:
    """An .npz's ``names`` array as item names: one text (or whole-number) name per image; any other
    array (2-D rows, booleans, dates, a member that is no .npy) is refused, not shown as "['a' 'b']"."""
    if not isinstance(names, np.ndarray):
        raise BadInput(path, "'names' is not a numpy array (its member is no .npy)")
    if names.ndim != 1 or names.dtype.kind not in "USiu":
        raise BadInput(path, f"'names' must be a 1-D array of names (text or whole numbers), got shape "
                             f"{names.shape} of {names.dtype}")
    return [storable_name(as_text(x)) for x in names]


class NpzSource(Source):
    """An ``.npz`` holding ``images`` (N, H, W[, C]) and optionally ``names``."""

    def __init__(self, path: Path):
        self.path = path
        self.description = str(path)
        _check_zip(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                if "images" not in z:
                    raise BadInput(path, f"no 'images' array (has: {', '.join(z.files)})")
                images = z["images"]
                if not isinstance(images, np.ndarray):  # a member that is no .npy: np.load hands back its bytes
                    raise BadInput(path, "'images' is not a numpy array (its member is no .npy)")
                if images.ndim not in (3, 4) or 0 in images.shape:
                    raise BadInput(path, f"'images' must be (N, H, W) or (N, H, W, C) and non-empty, "
                                         f"got shape {images.shape}")
                if images.dtype.kind not in "biuf":
                    raise BadInput(path, f"'images' must hold numbers, got {images.dtype}")
                n = images.shape[0]
                names = _names(z["names"], path) if "names" in z else [f"{i:06d}" for i in range(n)]
                if len(names) != n:
                    raise BadInput(path, f"'names' has {len(names)} entries for {n} images")
                self.top = _value_range(images, path)
                self.keys = list(z.files)
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable npz
            raise BadInput(path, f"not a readable .npz ({exc})") from None
        self.names = names

    def refs(self) -> list[Ref]:
        return [Ref(name, i) for i, name in enumerate(self.names)]

    def fingerprint_parts(self) -> list:
        return [_stat(self.path)]

    def column(self, key: str) -> np.ndarray:
        with np.load(self.path, allow_pickle=False) as z:
            if key not in z:
                raise BadInput(self.path, f"no array {key!r} for labels (has: {', '.join(z.files)})")
            try:
                return z[key]
            except ValueError as exc:  # an object array: it would need pickle
                raise BadInput(self.path, f"array {key!r} cannot be read as labels ({exc})") from None
            except Exception as exc:  # noqa: BLE001 - a damaged member (bad CRC, cut short, bad deflate data)
                raise BadInput(self.path, f"array {key!r} is damaged ({first_line(exc, 120)})") from None

    def _images(self) -> np.ndarray:
        key = str(_stat(self.path))  # path, size and mtime: a rewritten file is read again
        if key not in _npz_cache:  # once per process (forked workers inherit it)
            _npz_cache.clear()
            with np.load(self.path, allow_pickle=False) as z:
                _npz_cache[key] = {"images": z["images"]}
        return _npz_cache[key]["images"]

    def warm(self) -> None:
        self._images()

    def payload(self, ref: Ref, codec) -> Any:
        images = self._images()
        try:
            return _rgba(images[ref.where], self.top)
        except ValueError as exc:
            raise BadInput(f"{self.path}[{ref.name}]", str(exc)) from None


def _json_type(value: Any) -> str:
    """A parsed JSON value's type as JSON names it ("an array", "null")."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return {dict: "an object", list: "an array", str: "a string"}.get(type(value), "a number")


class JsonlSource(Source):
    """Texts, one JSON object per line with ``text`` (and ``name``) fields; may be gzipped."""

    kind = "text"

    def __init__(self, path: Path):
        self.path = path
        self.description = str(path)
        self.items: list[tuple[str, str]] = []
        self.bad: list[str] = []
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as fh:
                for i, raw in enumerate(fh, 1):
                    try:  # line by line: one line that is not UTF-8 is a skipped item, not a failed build
                        line = raw.decode("utf-8-sig" if i == 1 else "utf-8")
                    except UnicodeDecodeError as exc:
                        self.bad.append(f"{path}:{i}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})")
                        continue
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except (json.JSONDecodeError, RecursionError) as exc:
                        self.bad.append(f"{path}:{i}: not JSON ({first_line(exc, 120)})")
                        continue
                    if not isinstance(obj, dict):
                        self.bad.append(f"{path}:{i}: {_json_type(obj)}, not an object with a 'text' field")
                        continue
                    text = obj.get("text")
                    if not isinstance(text, str):
                        self.bad.append(f"{path}:{i}: " + ("no 'text' field" if "text" not in obj else
                                                          f"'text' holds {_json_type(text)}, not a string"))
                        continue
                    name = obj.get("name")  # "name": null is no name, not the name "None" of every such line
                    self.items.append((f"line{i}" if name is None else storable_name(str(name)), text))
        except (OSError, UnicodeDecodeError, EOFError, zlib.error) as exc:
            raise BadInput(path, f"cannot read as UTF-8 JSON lines ({exc})") from None

    def refs(self) -> list[Ref]:
        return [Ref(name, text) for name, text in self.items]

    def fingerprint_parts(self) -> list:
        return [_stat(self.path)]

    def payload(self, ref: Ref, codec) -> Any:
        return ref.where


def _files_source(files: list[tuple[Path, str, str]], description: str, codec) -> FileSource:
    return FileSource(files, description, codec.input_kind)


def open_source(spec: str, codec) -> Source:
    """Resolve a SOURCE argument (see module doc) for a codec."""
    from artforge.fsutil import is_pipe
    from artforge.imageio import IMAGE_SUFFIXES, folder_files, readable_name

    if spec.startswith("builtin:"):
        from artforge.plugins import PluginError, lookup

        entry = lookup("datasets", spec.removeprefix("builtin:"))
        where = Path(entry.obj)
        if not where.exists() and not any(ch in str(where) for ch in "*?["):  # the plugin's mistake, not the user's
            hint = ("a relative path is read from the current folder: build it from Path(__file__).parent"
                    if not where.is_absolute() else "a data file its package does not install? list it as "
                    "package data in the plugin's pyproject.toml")
            raise PluginError(f"plugin {entry.plugin!r} registers data set {entry.name!r} at {where}, which does "
                              f"not exist ({hint})")
        return open_source(str(entry.obj), codec)
    suffixes = codec.input_suffixes or IMAGE_SUFFIXES
    path = Path(spec)
    if path.is_dir():
        files = [
            (f, readable_name(f.relative_to(path).as_posix()),
             readable_name(f.parent.relative_to(path).as_posix().strip(".")))
            for f in folder_files(path, suffixes)
        ]
        return _files_source(files, str(path), codec)
    if path.is_file():
        name = path.name.lower()
        if name.endswith(".npz"):
            return NpzSource(path)
        if name.endswith((".jsonl", ".jsonl.gz")):
            return JsonlSource(path)
        return _files_source([(path, readable_name(path.name), "")], str(path), codec)
    if is_pipe(path):  # <(cat x.png): one item, read once (its name has no suffix to tell .npz/.jsonl)
        return _files_source([(path, readable_name(path.name), "")], str(path), codec)
    if path.exists():
        raise BadInput(path, "not a regular file, folder or pattern")
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))
        files = [(p, readable_name(p.as_posix()), readable_name(p.parent.name)) for p in matches if p.is_file()]
        if not files:
            raise ArtforgeError(f"{spec}: the pattern matches no files")
        return _files_source(files, spec, codec)
    raise BadInput(spec, "no such file, folder or pattern (or builtin:NAME)")


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_fingerprint(path: str | os.PathLike) -> list:
    return _stat(Path(path))
