"""The HDF5 token cache: build (parallel, streaming, atomic), inspect, verify.

Layout (schema 1; see docs/data.md for every dataset and attribute):
  /tokens   (N, *shape) smallest uint dtype, chunked along N, gzip + shuffle
  /names    (N,) UTF-8 strings
  /labels   (N, L) float32, with attr ``columns`` (JSON list)       [only with --labels]
  /skipped  (M, 2) UTF-8 strings: name, reason
  attrs     schema, artforge_version, codec (JSON), codec_spec, fingerprint, source, ...
"""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from artforge import __version__
from artforge.errors import ArtforgeError, BadInput, first_line, utf8_text
from artforge.fsutil import atomic_path, check_not_inputs, check_output, check_readable, is_pipe, sweep_partials

SCHEMA = 1
CHUNK_ITEMS = 256  # items per worker job
TARGET_CHUNK_BYTES = 256 * 1024  # HDF5 chunk size aimed at (kept within 10 KiB .. 1 MiB)


@dataclass
class BuildResult:
    path: Path
    status: str  # "built" or "up-to-date"
    n_items: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    reason: str = ""


# -- worker side -------------------------------------------------------------------------------
_W: dict[str, Any] = {}


def _init_worker(source, codec_config: dict | None, codec, size, resample) -> None:
    from artforge.codecs import codec_from_config

    _W["source"] = source
    _W["codec"] = codec if codec is not None else codec_from_config(codec_config)
    _W["size"] = size
    _W["resample"] = resample


def _prepare_chunk(refs) -> tuple[list, list, list]:
    """refs -> (names, prepared items, skipped (name, reason))."""
    source, codec = _W["source"], _W["codec"]
    names, items, skipped = [], [], []
    for ref in refs:
        try:
            items.append(codec.prepare(source.payload(ref, codec), _W["size"], _W["resample"]))
            names.append(ref.name)
        except BadInput as exc:
            skipped.append((ref.name, exc.reason))
        except (ValueError, ArtforgeError) as exc:
            skipped.append((ref.name, str(exc)))
    return names, items, skipped


def _encode_chunk(refs) -> tuple[list, list, list]:
    """refs -> (names, per-item token arrays, skipped). What the codec returns is checked outside the
    skips: a codec bug (tokens out of its vocabulary, floats, the N axis lost) stops the build, naming
    the codec, instead of being cast into the cache or skipping every item."""
    from artforge.codecs import check_encoded

    names, items, skipped = _prepare_chunk(refs)
    codec = _W["codec"]
    out_names, tokens = [], []
    if items:
        try:
            toks = codec.encode(codec.stack(items))
        except ArtforgeError:  # mixed shapes: encode one by one, the writer sorts them out
            for n, it in zip(names, items, strict=True):
                try:
                    one = codec.encode(codec.stack([it]))
                except (ArtforgeError, ValueError) as exc:
                    skipped.append((n, str(exc)))
                    continue
                tokens.append(check_encoded(codec, one, 1)[0])
                out_names.append(n)
        else:
            tokens = list(check_encoded(codec, toks, len(items)))
            out_names = names
    return out_names, tokens, skipped


def _fit_chunk(refs):
    names, items, skipped = _prepare_chunk(refs)
    codec = _W["codec"]
    batch = None
    if items:
        try:
            batch = codec.stack(items)
        except ArtforgeError:
            batch = None
    return batch


def _pool_context():
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods and sys.platform.startswith("linux") else "spawn")


def _run(fn: Callable, jobs: list, workers: int, init_args: tuple) -> Iterator:
    """Ordered results of fn over jobs. Ctrl-C and SIGTERM stop it between jobs, so the caller's
    writes are never cut halfway (and its atomic output is removed)."""
    from artforge.signals import deferred_stop

    if workers <= 1 or len(jobs) <= 1:
        with deferred_stop() as stop:
            _init_worker(*init_args)
            for job in jobs:
                result = fn(job)
                stop.check()
                yield result
        return
    from artforge.data.workers import ordered_map

    ctx = _pool_context()
    if ctx.get_start_method() == "fork":
        init_args[0].warm()
    yield from ordered_map(fn, jobs, workers, _init_worker, init_args, ctx)


# -- building ----------------------------------------------------------------------------------
def _chunk_items(shape: tuple[int, ...], itemsize: int) -> int:
    per_item = max(1, int(np.prod(shape)) * itemsize)
    k = max(1, TARGET_CHUNK_BYTES // per_item)
    while k > 1 and k * per_item > 1024 * 1024:
        k //= 2
    return k


@contextmanager
def _new_h5(path: Path):
    """``h5py.File(path, "w")``, let go of even when writing it failed. A write that fails (the disk full)
    leaves HDF5 unable to flush the file, so it stays open, and the library crashed when Python exited
    (a segmentation fault after the error line). The abandoned partial file's descriptor is pointed at
    /dev/null instead, where HDF5's last writes succeed."""
    import h5py

    f = h5py.File(path, "w")
    fd = f.id.get_vfd_handle()
    st = os.fstat(fd)
    try:
        yield f
        try:  # a failure here leaves every object open, which the close below needs; one in close does not
            f.flush()
        except RuntimeError as exc:  # h5py's type for a failed flush; its text names the errno
            code = re.search(r"errno = (\d+)", str(exc))
            raise OSError(int(code.group(1)) if code else errno.EIO, first_line(exc)) from None
        f.close()
    except BaseException:
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):  # still HDF5's descriptor of the file
                null = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(null, fd)
                finally:
                    os.close(null)
            if f.id.valid:
                f.close()
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise


def _read_attrs(path: Path) -> dict | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return dict(f.attrs)
    except (OSError, KeyError):
        return None


def _what_is_replaced(path: Path) -> str:
    """Why an existing ``-o`` that holds no cache attributes is rebuilt, as the build line says it."""
    import h5py

    if not path.is_file():
        return "writing to a file that is not a regular file"  # -o /dev/null
    if not os.access(path, os.R_OK):
        return "replacing an unreadable file"
    if path.stat().st_size == 0:
        return "replacing an empty file"
    if not h5py.is_hdf5(path):
        return "replacing a file that is not an HDF5 cache"
    return "replacing a damaged HDF5 file"


def _opens(path: Path) -> bool:
    """Whether the cache passes the layout check every reader makes (a damaged one is rebuilt)."""
    try:
        open_cache(path).close()
    except BadInput:
        return False
    return True


def build_cache(
    source_spec: str,
    codec_spec: str,
    out: str | os.PathLike,
    size: int | None = None,
    resample: str = "lanczos",
    labels: str | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> BuildResult:
    """Encode a source into an HDF5 cache (see module doc). Returns what happened."""
    import h5py

    from artforge.codecs import get_codec
    from artforge.data.labels import candidate_keys, from_folders, load_labels
    from artforge.data.sources import READER_VERSION, file_fingerprint, fingerprint, open_source

    t0 = time.perf_counter()
    out = check_output(out)
    if out.exists() and Path(source_spec).exists() and out.resolve() == Path(source_spec).resolve():
        raise BadInput(out, "is the source itself; write the cache to another file")
    if not force and out.is_file() and not os.access(out, os.R_OK):  # h5py.is_hdf5 would fail on it
        raise BadInput(out, "exists and cannot be read (permission denied), so it may be no cache; refusing to "
                            "replace it (choose another -o, or --force)")
    if not force and out.is_file() and out.stat().st_size and not h5py.is_hdf5(out):
        raise BadInput(out, "exists and is not an HDF5 cache; refusing to replace it (choose another -o, or --force)")
    codec = get_codec(codec_spec)
    codec.check_read_options(size, resample)  # before the source is read: its items' problems would hide this
    source = open_source(source_spec, codec)
    if codec.needs_fit and is_pipe(source_spec):
        raise BadInput(source_spec, f"a pipe can be read once, and codec {codec.spec} reads its source twice "
                                    "(to fit, then to encode): save it to a file first")
    if source.kind != codec.input_kind:
        raise ArtforgeError(
            f"{source_spec}: holds {source.kind} items but codec {codec.spec} reads {codec.input_kind}"
        )
    refs = source.refs()
    skipped: list[tuple[str, str]] = [("(line)", b) for b in getattr(source, "bad", [])]
    seen: set[str] = set()
    unique = []
    for r in refs:
        if r.name in seen:
            skipped.append((r.name, "duplicate name (the first one is kept)"))
        else:
            seen.add(r.name)
            unique.append(r)
    refs = unique

    table = None
    folder_of = {r.name: r.folder for r in refs}
    if labels == "dirs":
        if len({r.folder for r in refs}) < 2:  # e.g. an .npz source: its items have no folders
            raise BadInput(source_spec, "--labels dirs needs items in two or more sub-folders; these are all in one")
        table = from_folders([r.folder for r in refs])
    elif labels:
        table = load_labels(labels, source)
    fp_parts = {
        "schema": SCHEMA,
        "reader": READER_VERSION,
        "source": source.fingerprint_parts(),
        "codec": codec.config(),
        "size": size,
        "resample": resample,
        "labels": None if not labels else (labels if labels == "dirs" or labels.startswith("npz:")
                                          else file_fingerprint(labels)),
    }
    fp = fingerprint(fp_parts)
    sweep_partials(out.parent, once=False)  # a killed build's leftovers go even when there is nothing to rebuild
    old = _read_attrs(out) if out.exists() else None
    reason = "new cache"
    if old is not None:
        if not force and old.get("fingerprint") == fp and old.get("schema") == SCHEMA and _opens(out):
            return BuildResult(out, "up-to-date", int(old.get("n_items", 0)), seconds=time.perf_counter() - t0,
                               reason="same source, codec and options")
        reason = "forced" if force else _why_changed(old, fp_parts)
    elif out.exists():
        reason = _what_is_replaced(out)
    if not refs:  # a .jsonl whose every line is bad: its first reason, as when every item fails to encode
        raise ArtforgeError(f"{source_spec}: every item was skipped ({len(skipped)}); first: {skipped[0][0]}: "
                            f"{skipped[0][1]}" if skipped else f"{source_spec}: no items to encode")
    # -o naming a file the build reads (a picture in the source folder: --force skips the HDF5 check above);
    # only now that it will be written, as it resolves every input
    check_not_inputs([out], [*source.paths(), *([labels] if labels and Path(labels).is_file() else [])])

    workers = max(1, workers or os.cpu_count() or 1)
    jobs = [refs[i : i + CHUNK_ITEMS] for i in range(0, len(refs), CHUNK_ITEMS)]
    bar = _Progress(len(refs), progress)

    if codec.needs_fit:
        bar.stage("fitting codec")
        fit_args = (source, None, codec, size, resample)
        codec.fit(b for b in _run(_fit_chunk, jobs, workers, fit_args) if b is not None)
    init_args = (source, codec.config(), None, size, resample)

    n = 0
    shape: tuple[int, ...] | None = None
    matched_keys: set[str] = set()
    bar.stage(f"encoding with {codec.spec}")
    with atomic_path(out) as tmp:
        with _new_h5(tmp) as f:
            tok_ds = names_ds = lab_ds = None
            for names, tokens, bad in _run(_encode_chunk, jobs, workers, init_args):
                skipped.extend(bad)
                keep_names, keep_tokens, keep_labels = [], [], []
                for name, tok in zip(names, tokens, strict=True):
                    if shape is None:
                        shape = tuple(tok.shape)
                    if tuple(tok.shape) != shape:
                        skipped.append((name, f"tokens {_fmt(tok.shape)} differ from the cache's "
                                              f"{_fmt(shape)}; pass --size to fit all images"))
                        continue
                    if table is not None:
                        vec = table.rows.get(folder_of[name]) if labels == "dirs" else table.match(name)
                        if vec is None:
                            skipped.append((name, "no labels for this image"))
                            continue
                        keep_labels.append(vec)
                    keep_names.append(name)
                    keep_tokens.append(tok)
                if keep_tokens:
                    if tok_ds is None:
                        k = _chunk_items(shape, codec.token_dtype.itemsize)
                        tok_ds = f.create_dataset(
                            "tokens", shape=(0, *shape), maxshape=(None, *shape), dtype=codec.token_dtype,
                            chunks=(k, *shape), compression="gzip", compression_opts=4, shuffle=True,
                        )
                        names_ds = f.create_dataset(
                            "names", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(), chunks=(1024,)
                        )
                        if table is not None:
                            lab_ds = f.create_dataset(
                                "labels", shape=(0, len(table.columns)), maxshape=(None, len(table.columns)),
                                dtype=np.float32, chunks=(max(1, min(4096, 65536 // max(1, len(table.columns)))),
                                                          len(table.columns)), compression="gzip",
                            )
                            lab_ds.attrs["columns"] = json.dumps(table.columns)
                    m = len(keep_tokens)
                    tok_ds.resize(n + m, axis=0)
                    tok_ds[n : n + m] = np.stack(keep_tokens).astype(codec.token_dtype, copy=False)
                    names_ds.resize(n + m, axis=0)
                    names_ds[n : n + m] = [utf8_text(str(x)) for x in keep_names]  # HDF5 stores UTF-8
                    if lab_ds is not None:
                        lab_ds.resize(n + m, axis=0)
                        lab_ds[n : n + m] = np.stack(keep_labels)
                        matched_keys.update(keep_names)
                    n += m
                bar.advance(len(names) + len(bad))
            bar.close()
            if n == 0:
                raise ArtforgeError(f"{source_spec}: every item was skipped ({len(skipped)}); "
                                    f"first: {skipped[0][0]}: {skipped[0][1]}" if skipped else "no items")
            rows = [[utf8_text(str(x)) for x in row] for row in skipped]
            sk = np.array(rows, dtype=object).reshape(-1, 2) if skipped else np.zeros((0, 2), object)
            f.create_dataset("skipped", data=sk.astype(h5py.string_dtype()), dtype=h5py.string_dtype())
            unused_labels = []
            if table is not None and labels != "dirs":
                used = set()
                for name in matched_keys:
                    used.update(candidate_keys(name))
                unused_labels = sorted(k for k in table.rows if k not in used)
            attrs = {
                "schema": SCHEMA,
                "artforge_version": __version__,
                "codec": json.dumps(codec.config(), sort_keys=True),
                "codec_spec": codec.spec,
                "vocab_size": codec.vocab_size,
                "input_kind": codec.input_kind,
                "layout": "fixed",
                "token_shape": json.dumps(list(shape)),
                "fingerprint": fp,
                "fingerprint_parts": json.dumps(fp_parts, sort_keys=True, default=str),
                "source": utf8_text(source_spec),
                "size": size or 0,
                "resample": resample,
                "n_items": n,
                "n_read": n + len(skipped),
                "n_skipped": len(skipped),
                "labels_source": utf8_text(str(labels or "")),
                "labels_without_image": json.dumps(unused_labels[:1000]),  # (ASCII: json escapes the rest)
                "n_labels_without_image": len(unused_labels),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            for k, v in attrs.items():
                f.attrs[k] = v
    return BuildResult(out, "built", n, skipped, time.perf_counter() - t0, reason)


def _fmt(shape) -> str:
    return "x".join(str(s) for s in shape)


def _why_changed(old: dict, parts: dict) -> str:
    if old.get("schema") != SCHEMA:
        return f"schema {old.get('schema')} -> {SCHEMA}"
    try:
        prev = json.loads(old.get("fingerprint_parts", "{}"))
    except json.JSONDecodeError:
        return "fingerprint changed"
    now = json.loads(json.dumps(parts, sort_keys=True, default=str))
    changed = [k for k in now if prev.get(k) != now[k]]
    if "reader" in changed:  # the same files, read differently by another artforge: say so in words
        was = f"version {prev['reader']}" if "reader" in prev else "of an older artforge"
        changed[changed.index("reader")] = f"how sources are read (source reader {was} -> version {now['reader']})"
    return ("changed: " + ", ".join(changed)) if changed else "fingerprint changed"


class _Progress:
    """A rich progress bar on stderr when it is a terminal, or nothing (a transient bar shows nothing in a
    log or a pipe but the blank line rich ends it with)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            enabled = console.is_terminal
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.speed} items/s"), TimeRemainingColumn(),
                                console=console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("reading", total=total)

    def stage(self, text: str) -> None:
        if self.bar:
            self.bar.reset(self.task, description=text)

    def advance(self, n: int) -> None:
        if self.bar:
            self.bar.advance(self.task, n)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None


# -- reading -----------------------------------------------------------------------------------
def open_cache(path: str | os.PathLike):
    """Open a cache for reading, checking it is one artforge can use (h5py File)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "is a folder, not a cache file" if path.is_dir()
                       else "is not a regular file (a cache is an .h5 file)" if path.exists() else "no such cache file")
    check_readable(path)  # h5py would call it "not an HDF5 cache"
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise BadInput(path, f"not an HDF5 cache ({exc})") from None
    try:  # a damaged attribute block fails as it is read
        schema = f.attrs.get("schema")
        layout = f.attrs.get("layout", "fixed")
    except (OSError, KeyError, ValueError) as exc:
        f.close()
        raise _damaged(path, exc) from None
    if "tokens" not in f or schema is None:
        f.close()
        raise BadInput(path, "not an artforge token cache (no tokens/schema); build one with `artforge data build`")
    if str(schema) != str(SCHEMA):
        f.close()
        raise BadInput(path, f"cache schema {schema} is not {SCHEMA} (made by another artforge version); "
                             "rebuild it with `artforge data build ... --force`")
    if not isinstance(layout, str) or layout != "fixed":  # an array attribute has no single truth value
        f.close()
        raise BadInput(path, f"cache layout {layout!r} is not supported by this artforge version")
    try:
        problem = _structure_problem(f)
    except (KeyError, ValueError, TypeError, AttributeError, OSError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        f.close()
        raise BadInput(path, f"damaged artforge cache ({problem}); rebuild it with `artforge data build ... --force`")
    return f


def _structure_problem(f) -> str | None:
    """What is wrong with an open cache's layout (datasets, shapes, attributes), or None."""
    import h5py

    tok = f["tokens"]
    if not isinstance(tok, h5py.Dataset) or tok.ndim < 2 or tok.dtype.kind not in "iu":
        return "tokens is not an (N, ...) integer array"
    n = tok.shape[0]
    if not isinstance(f.get("names"), h5py.Dataset) or f["names"].shape != (n,):
        return f"names is not a list of {n} names"
    skipped = f.get("skipped")
    if skipped is not None and (not isinstance(skipped, h5py.Dataset) or skipped.ndim != 2 or skipped.shape[1] != 2):
        return "skipped is not a list of (name, reason) rows"
    codec = json.loads(f.attrs["codec"])
    if not isinstance(codec, dict):
        return "the codec attribute is not a codec config"
    int(f.attrs["vocab_size"])
    if "labels" in f:
        lab = f["labels"]
        cols = json.loads(lab.attrs["columns"]) if isinstance(lab, h5py.Dataset) else None
        if cols is None or lab.ndim != 2 or lab.shape != (n, len(cols)):
            return f"labels are not {n} rows of their listed columns"
        if not np.isfinite(lab[:]).all():
            return "labels hold NaN or infinite values"
    return None


def text_items(dataset) -> np.ndarray:
    """A string dataset's items as str, decoded as UTF-8 (what ``h5py.string_dtype()`` stores): numpy's
    ``astype(str)`` decodes bytes as ASCII, so one item name with an accent (``café.png``) made the
    whole cache "damaged". Bytes that are not UTF-8 raise UnicodeDecodeError."""
    data = dataset[:]
    if data.dtype.kind not in "OS":
        return data.astype(str)
    items = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in data.ravel()]
    return np.array(items, dtype=object).reshape(data.shape)


def cache_names(path: str | os.PathLike) -> list[str]:
    """Every item's name, in cache order (what the splits hash)."""
    with open_cache(path) as f:
        try:
            return text_items(f["names"]).tolist()
        except (OSError, UnicodeDecodeError) as exc:  # a damaged chunk, or bytes that are not text
            raise _damaged(path, exc) from None


def _damaged(path: str | os.PathLike, exc: Exception) -> BadInput:
    return BadInput(path, f"damaged artforge cache ({type(exc).__name__}: {first_line(exc)}); rebuild it with "
                          "`artforge data build ... --force`")


def cache_info(path: str | os.PathLike) -> dict:
    """Everything `artforge data info` shows, as plain JSON."""
    with open_cache(path) as f:
        try:
            return _cache_info(path, f)
        except (KeyError, ValueError, TypeError, OSError) as exc:  # an attribute missing or not of its type,
            raise _damaged(path, exc) from None                      # or a damaged chunk


def _text(attrs, key: str) -> str:
    """A text attribute; h5py keeps bytes that are not UTF-8 as lone surrogates, which no output takes."""
    text = str(attrs[key])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"attribute {key!r} is not UTF-8 text") from None
    return text


def _cache_info(path: str | os.PathLike, f) -> dict:
    tok = f["tokens"]
    a = f.attrs
    raw = int(tok.size * tok.dtype.itemsize)
    stored = int(tok.id.get_storage_size())
    info = {
        "path": str(path),
        "items": int(tok.shape[0]),
        "codec": json.loads(a["codec"]),
        "codec_spec": _text(a, "codec_spec"),
        "vocab_size": int(a["vocab_size"]),
        "token_shape": list(tok.shape[1:]),
        "dtype": str(tok.dtype),
        "chunks": list(tok.chunks or []),
        "compression": tok.compression,
        "file_bytes": Path(path).stat().st_size,
        "token_bytes_raw": raw,
        "token_bytes_stored": stored,
        "compression_ratio": round(raw / stored, 2) if stored else None,
        "source": _text(a, "source"),
        "size": int(a["size"]) or None,
        "read": int(a["n_read"]),
        "skipped": int(a["n_skipped"]),
        "skipped_items": [[str(x) for x in row] for row in text_items(f["skipped"])] if "skipped" in f else [],
        "labels": None,
        "labels_without_image": int(a.get("n_labels_without_image", 0)),
        "schema": int(a["schema"]),
        "artforge_version": _text(a, "artforge_version"),
        "created": _text(a, "created"),
        "fingerprint": _text(a, "fingerprint"),
    }
    if "labels" in f:
        cols = json.loads(f["labels"].attrs["columns"])
        lab = f["labels"][:]
        info["labels"] = {
            "source": _text(a, "labels_source"),
            "columns": cols,
            "frequency": {c: round(float((lab[:, i] != 0).mean()), 4) for i, c in enumerate(cols)},
        }
    return info


def verify_cache(path: str | os.PathLike) -> list[str]:
    """Read every chunk and check the cache's invariants; return the problems found."""
    from artforge.codecs import check_item_shape, codec_from_config

    problems: list[str] = []
    with open_cache(path) as f:
        tok = f["tokens"]
        n = tok.shape[0]
        vocab = int(f.attrs["vocab_size"])
        if f["names"].shape[0] != n:
            problems.append(f"names has {f['names'].shape[0]} entries for {n} items")
        if "labels" in f and f["labels"].shape[0] != n:
            problems.append(f"labels has {f['labels'].shape[0]} rows for {n} items")
        stored_n = f.attrs.get("n_items")
        if not isinstance(stored_n, int | np.integer) or int(stored_n) != n:
            problems.append(f"attr n_items={stored_n!r} but tokens has {n}")
        try:
            codec = codec_from_config(json.loads(f.attrs["codec"]))
        except ArtforgeError as exc:
            problems.append(f"codec: {exc}")
        else:  # training sizes its model by vocab_size and decodes with the codec: they must agree
            if codec.vocab_size != vocab:
                problems.append(f"attr vocab_size={vocab} but codec {codec.spec} has a vocabulary of "
                                f"{codec.vocab_size}")
            try:
                check_item_shape(codec, tok, "tokens")
            except ArtforgeError as exc:
                problems.append(str(exc))
        step = max(1, (tok.chunks or (1024,))[0] * 16)
        for i in range(0, n, step):
            try:
                block = tok[i : i + step]
            except OSError as exc:
                problems.append(f"items {i}..{i + step}: unreadable ({exc})")
                continue
            if block.size and int(block.max()) >= vocab:
                problems.append(f"items {i}..{i + step}: token {int(block.max())} >= vocab {vocab}")
            if block.size and int(block.min()) < 0:  # a signed dtype: an embedding lookup fails on these too
                problems.append(f"items {i}..{i + step}: token {int(block.min())} < 0")
        try:
            names = text_items(f["names"]).tolist()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"names: unreadable ({first_line(exc)})")
            names = []
        if len(set(names)) != len(names):
            problems.append("duplicate names")
        if "labels" in f and not np.isfinite(f["labels"][:]).all():
            problems.append("labels hold NaN or inf")
    return problems
