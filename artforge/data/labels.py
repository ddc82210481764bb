"""Labels that travel with images: JSON (CryptoPunks style), CSV, folder names, or an npz array.

Every label source becomes a table of float columns. Numbers stay as they are (``earring``
0/1); text values become one-hot columns named ``field=value`` (``type=female``); lists of
text become multi-hot columns. So ``--label earring=1 --label type=female`` can address both.

Image names are matched to label keys by, in order: the full relative name, the name without
its suffix, the file name, its stem, and the number in the stem (``punk0042.png`` -> ``42``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from artforge.errors import BadInput, as_text
from artforge.fsutil import is_pipe, read_pipe

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Labels:
    columns: list[str]
    rows: dict[str, np.ndarray]  # key -> float32 vector
    source: str
    unmatched: list[str] = field(default_factory=list)  # filled by match()

    def match(self, name: str, folder: str = "") -> np.ndarray | None:
        for key in candidate_keys(name):
            if key in self.rows:
                return self.rows[key]
        return None


def candidate_keys(name: str) -> list[str]:
    p = Path(name)
    keys = [name, p.with_suffix("").as_posix(), p.name, p.stem]
    m = re.search(r"(\d+)$", p.stem)
    if m:
        keys.append(str(int(m.group(1))))
    return list(dict.fromkeys(keys))


def _check_number(x: float, v, k: str, key: str, source: str) -> None:
    """A numeric label value ``v`` (read as ``x``) must fit a float32 label column."""
    if not np.isfinite(x) or abs(x) > FLOAT32_MAX:
        raise BadInput(source, f"label {k!r} of {key!r} is {v!r}: labels must be finite float32 numbers")


def _as_float(v: int | float) -> float:
    """A JSON number as a float: an integer too large for one (JSON allows 400 digits) is infinite, which
    :func:`_check_number` refuses, instead of Python's OverflowError."""
    try:
        return float(v)
    except OverflowError:
        return float("inf")


def _encode_records(records: dict[str, dict], source: str) -> Labels:
    numeric: set[str] = set()
    categorical: dict[str, set[str]] = {}
    for key, rec in records.items():
        if not isinstance(rec, dict):
            raise BadInput(source, f"labels for {key!r} are not a mapping of name to value")
        for k, v in rec.items():
            if isinstance(v, bool) or isinstance(v, int | float):
                _check_number(_as_float(v), v, k, key, source)
                numeric.add(k)
            elif isinstance(v, str):
                try:
                    x = float(v)
                except ValueError:
                    categorical.setdefault(k, set()).add(v)
                    continue
                _check_number(x, v, k, key, source)  # "nan", "inf", "1e400"
                numeric.add(k)
            elif isinstance(v, list):
                if not all(isinstance(x, str | int | float) and not isinstance(x, bool) for x in v):
                    raise BadInput(source, f"label {k!r} of {key!r} is a list holding {v!r}: lists hold names")
                categorical.setdefault(k, set()).update(str(x) for x in v)
            elif v is not None:
                raise BadInput(source, f"label {k!r} of {key!r} has unsupported value {v!r}")
    clash = numeric & set(categorical)
    if clash:
        numeric -= clash  # mixed columns are treated as text
        for k in clash:
            for rec in records.values():
                if k in rec and rec[k] is not None:
                    categorical[k].add(str(rec[k]))
    columns = sorted(numeric) + [f"{k}={v}" for k in sorted(categorical) for v in sorted(categorical[k])]
    if not columns:
        raise BadInput(source, "holds no label values (every record is empty or null)")
    index = {c: i for i, c in enumerate(columns)}
    rows = {}
    for key, rec in records.items():
        vec = np.zeros(len(columns), np.float32)
        for k, v in rec.items():
            if v is None:
                continue
            if k in numeric:
                vec[index[k]] = float(v)
            elif isinstance(v, list):
                for x in v:
                    vec[index[f"{k}={x}"]] = 1.0
            else:
                vec[index[f"{k}={v}"]] = 1.0
        rows[str(key)] = vec
    return Labels(columns, rows, source)


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """json's object_pairs_hook: an object with a key given twice is refused, not cut to its last value."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


def load_labels(spec: str, source=None) -> Labels:
    """Read ``--labels``: a .json or .csv file, ``npz:KEY`` (an array of an .npz source).

    ``dirs`` is handled by :func:`from_folders`, since it needs the items' folders.
    """
    if spec.startswith("npz:"):
        if not hasattr(source, "column"):
            raise BadInput(spec, "npz:KEY labels need an .npz source")
        values = source.column(spec[4:])
        if values.ndim != 1 or values.dtype.kind not in "biufUS":
            raise BadInput(spec, f"must be a 1-D array of numbers or names, got shape {values.shape} "
                                 f"of {values.dtype}")
        if len(values) != len(source.names):
            raise BadInput(spec, f"has {len(values)} values for {len(source.names)} images")
        if values.dtype.kind == "S":  # bytes names: as text, not "b'x'" (astype(str) would refuse non-ASCII)
            values = np.array([as_text(v) for v in values])
        return _encode_records({n: {spec[4:]: str(v)} for n, v in zip(source.names, values, strict=True)}, spec)
    path = Path(spec)
    pipe = is_pipe(path)  # --labels <(cat l.csv): read once; no suffix, so told by its first character
    if not path.is_file() and not pipe:
        raise BadInput(path, "not a regular file (use a .json, a .csv, 'dirs' or 'npz:KEY')" if path.exists() else
                       "no such labels file (use a .json, a .csv, 'dirs' or 'npz:KEY')")
    try:  # a pipe through read_pipe: its size is capped, and nothing at all is "empty input"
        # utf-8-sig: a byte-order mark (Windows tools write one) is no part of the text, in JSON as in CSV
        text = read_pipe(path).decode("utf-8-sig") if pipe else path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(path, f"cannot read labels ({exc})") from None
    suffix = (".json" if text.lstrip().startswith(("{", "[")) else ".csv") if pipe else path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except _RepeatedKey as exc:  # json keeps the last of a repeated key without a word; a .csv refuses it
            raise BadInput(path, f"repeats the key {exc.args[0]!r} in one object") from None
        except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, or an integer over 4300 digits
            raise BadInput(path, f"invalid JSON ({str(exc)[:120]})") from None
        if isinstance(data, list):  # [{"name": ..., ...}, ...]
            records = {}
            for i, r in enumerate(data):
                if isinstance(r, dict):
                    name = str(r.pop("name", r.pop("id", i)))
                    if name in records:
                        raise BadInput(path, f"item {i} repeats the name {name!r}")
                    records[name] = r
            data = records
        if not isinstance(data, dict):
            raise BadInput(path, "expected an object keyed by image name/number")
        return _encode_records({str(k): v for k, v in data.items()}, str(path))
    if suffix == ".csv":
        # the csv module splits the records itself: a quoted field may hold a line break, and
        # str.splitlines() also splits at \x1c, \x0c or U+2028 inside a field
        reader = csv.reader(io.StringIO(text, newline=""))
        rows, ends = [], []  # each record, and the line it ends on (for messages)
        try:
            for r in reader:
                rows.append(r)
                ends.append(reader.line_num)
        except csv.Error as exc:  # a field over csv's 128 KiB limit
            raise BadInput(path, f"not a readable CSV ({exc})") from None
        if len(rows) < 2 or len(rows[0]) < 2:
            raise BadInput(path, "expected a header 'name,label1,...' and at least one row")
        header = [h.strip() for h in rows[0]]
        if not all(header[1:]) or len(set(header)) != len(header):
            raise BadInput(path, f"the header {','.join(header)!r} has an empty or repeated column name")
        records = {}
        for i, r in zip(ends[1:], rows[1:], strict=True):  # i: the line a record ends on
            if not r:
                continue
            if len(r) != len(header):
                raise BadInput(path, f"line {i} has {len(r)} fields, the header has {len(header)}")
            if r[0].strip() in records:
                raise BadInput(path, f"line {i} repeats the name {r[0].strip()!r}")
            records[r[0].strip()] = {h: (v.strip() or None) for h, v in zip(header[1:], r[1:], strict=True)}
        return _encode_records(records, str(path))
    raise BadInput(path, "labels must be a .json or .csv file, 'dirs' or 'npz:KEY'")


def from_folders(folders: list[str]) -> Labels:
    """``--labels dirs``: one-hot ``dir=NAME`` columns keyed by each item's parent folder."""
    return _encode_records({f: {"dir": f or "."} for f in sorted(set(folders))}, "dirs")
