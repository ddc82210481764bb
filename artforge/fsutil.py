"""Small file-system helpers: atomic writes and output-path checks."""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from artforge.errors import ArtforgeError, BadInput, shown

PARTIAL = ".partial-"
_PARTIAL_NAME = re.compile(r"^\..+\.partial-(\d+)-")  # .NAME.partial-PID-random
_swept: set[str] = set()  # folders already cleared of dead writers' partials by this process
#: The most bytes read from a pipe (see :func:`read_pipe`), which is held whole in memory: 1 GiB holds the
#: largest picture artforge opens (``artforge.grid.MAX_PIXELS``, Pillow's decompression-bomb limit) stored
#: uncompressed at 8 bytes a pixel (16-bit RGBA, ~716 MB), the widest form Pillow reads. A larger input is
#: read from a regular file, which needs no copy in memory to be parsed.
MAX_PIPE_BYTES = 1 << 30
_PIPE_CHUNK = 1 << 20


def partial_prefix(name: str) -> str:
    """The prefix of a temporary name for ``name`` (``.NAME.partial-PID-``, which :func:`sweep_partials`
    knows): NAME is cut short, at a whole character, so that the prefix and tempfile's 8 random
    characters fit in 255 bytes, the longest file name Linux allows; else a legal 255-byte output name
    could not be written ("File name too long" for its temporary file)."""
    tail = f"{PARTIAL}{os.getpid()}-"
    budget = 255 - 8 - 1 - len(tail)
    while len(os.fsencode(name)) > budget and len(name) > 1:
        name = name[:-1]
    return f".{name}{tail}"


def check_output(path: str | os.PathLike) -> Path:
    """Fail clearly when an output file's folder does not exist."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        taken = next((p for p in [parent, *parent.parents] if p.exists()), None)
        if taken is not None and not taken.is_dir():
            raise ArtforgeError(f"{shown(path)}: {shown(taken)} is a file, not a folder")
        raise ArtforgeError(f"{shown(path)}: output folder {shown(parent)} does not exist")
    if path.is_dir():
        raise ArtforgeError(f"{shown(path)}: is a folder, expected a file name")
    return path


def writes_in_place(path: str | os.PathLike) -> bool:
    """Whether an output is written straight into ``path``, not through a temporary file beside it: an
    existing target that is no regular file (``/dev/null``, a pipe), or one named through ``/dev`` or
    ``/proc`` (``-o /dev/stdout`` with stdout sent to a file: no temporary file can be made in /dev,
    and replacing the name would not reach the file behind it)."""
    path = Path(path)
    if not path.exists() or path.is_dir():
        return False
    folder = path.absolute().parent  # /dev/stdout, /dev/fd/1, /proc/self/fd/1; not a file in /dev/shm
    return not path.is_file() or folder in (Path("/dev"), Path("/dev/fd")) or folder.match("/proc/*/fd")


def check_readable(path: str | os.PathLike) -> None:
    """Refuse a file this process may not read in one line (:class:`BadInput`); a missing path or a
    folder passes, for the caller to name as it sees fit."""
    if os.path.isfile(path) and not os.access(path, os.R_OK):
        raise BadInput(path, "cannot read it (permission denied)")


def is_pipe(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a pipe (a FIFO, bash's ``<(cmd)``, ``/dev/stdin`` fed by ``|``): it has no size
    and no seek, so it is read once, whole (up to :data:`MAX_PIPE_BYTES`), and its bytes parsed from memory."""
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _bytes_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift:,} {unit}"
    return f"{n:,} bytes"


def read_pipe(path: str | os.PathLike) -> bytes:
    """All of a pipe's bytes (see :func:`is_pipe`), read in chunks; nothing at all, or more than
    :data:`MAX_PIPE_BYTES`, is a :class:`BadInput` (refused once the cap is passed, not after reading on)."""
    cap = MAX_PIPE_BYTES
    buf = bytearray()
    try:
        with open(path, "rb") as fh:
            while len(buf) <= cap:
                chunk = fh.read(min(_PIPE_CHUNK, cap + 1 - len(buf)))
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror or exc}") from None
    if len(buf) > cap:
        raise BadInput(path, f"the pipe gives more than {_bytes_text(cap)}, the most artforge reads from a pipe; "
                             "save it to a file first")
    if not buf:
        raise BadInput(path, "empty input (the pipe gave no bytes)")
    return bytes(buf)


def read_input_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes, or a pipe's through :func:`read_pipe` (capped); ``OSError`` of a file is the caller's."""
    return read_pipe(path) if is_pipe(path) else Path(path).read_bytes()


def check_readable_folder(path: str | os.PathLike) -> None:
    """Refuse a folder this process may not list or open files in (chmod 000), or a path it cannot
    reach (:func:`check_reachable`), in one line (:class:`BadInput`); a missing path or a file passes,
    for the caller to name as it sees fit."""
    check_reachable(path)
    if os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK):
        raise BadInput(path, "cannot read the folder (permission denied)")


def check_reachable(path: str | os.PathLike) -> None:
    """Refuse a path inside a folder that may not be searched (its existence cannot even be checked)
    in one line, rather than report it missing or stop on the PermissionError of ``Path.is_file``."""
    try:
        os.stat(path)
    except PermissionError:
        raise BadInput(path, "cannot reach it (permission denied on a folder above it)") from None
    except (OSError, ValueError):
        pass


def check_not_input(output: str | os.PathLike | None, inputs) -> None:
    """Refuse an output that is one of the command's input files: writing it would replace what is
    being read (``convert a.png -o a.png``)."""
    check_not_inputs([output], inputs)


def check_not_inputs(outputs, inputs) -> None:
    """:func:`check_not_input` for many outputs, resolving the inputs once (a folder of thousands)."""
    existing = [o for o in outputs if o is not None and Path(o).is_file()]
    if not existing:
        return
    taken = {Path(i).resolve() for i in inputs if Path(i).is_file()}
    for out in existing:
        if Path(out).resolve() in taken:
            raise ArtforgeError(f"{out}: is also an input of this command; write the result elsewhere")


def output_folder(path: str | os.PathLike, parents: bool = False) -> Path:
    """An output folder, made if missing. Its parent must exist, as for an output file (one level
    is made, never a whole tree by a typo), unless ``parents`` (a default such as ``runs/NAME``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ArtforgeError(f"{path}: is a file, expected an output folder")
    if not path.exists():
        if not parents:
            check_output(path)
        try:
            path.mkdir(parents=parents, exist_ok=True)
        except OSError as exc:
            raise ArtforgeError(f"{path}: cannot make the folder ({exc.strerror or exc})") from None
    return path


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENOENT}


def _cannot_write(path: Path, exc: OSError) -> ArtforgeError:
    # the errno's own words: a library's strerror may run over lines (HDF5's names the time, buffer, offset)
    return ArtforgeError(f"{path}: cannot write ({os.strerror(exc.errno) if exc.errno else exc})")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The temporary name starts with a dot and contains ``.partial-``, so a crash leaves nothing
    a reader could mistake for the real file. An existing target that is not a regular file
    (``/dev/null``, a pipe), or ``/dev/stdout`` sent to a file, is written directly
    (:func:`writes_in_place`): replacing it would destroy the device node, or miss the file.
    """
    path = check_output(path)
    if writes_in_place(path):
        try:
            yield path
        except OSError as exc:
            raise _cannot_write(path, exc) from None
        return
    sweep_partials(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=partial_prefix(path.name), dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); a plain open() would not
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.filename in (None, tmp, str(path)) and exc.errno in _WRITE_ERRORS:  # disk full, read-only...
            raise _cannot_write(path, exc) from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


TRAIN_LOCK = ".train.lock"


@contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold a run folder for one training process, so a second ``train`` on it (a ``--resume``
    while the first still runs) is refused instead of writing the same checkpoints and log.

    An advisory ``flock`` on ``RUN/.train.lock``: the kernel releases it however the holder ends
    (SIGKILL included), so a lock left behind never blocks a resume. Where there is no ``fcntl``
    (Windows) the run is not locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(run_dir) / TRAIN_LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies, as to every file made
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f"process {pid}" if pid.isdigit() else "another process"
            raise ArtforgeError(f"{run_dir}: {who} is training this run now; wait for it to end (or stop it: "
                                "Ctrl-C saves), then --resume") from None
        except OSError:  # a file system without flock (some network mounts): train unlocked, as before
            pass
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_partials(folder: str | os.PathLike, once: bool = True) -> list[Path]:
    """Delete the partial files (and staging folders) that writers killed outright (SIGKILL, power
    loss) left in ``folder``; a writer that is still alive keeps its own. With ``once``, a folder
    this process has swept before is not listed again (atomic writes call it for every file)."""
    folder = Path(folder)
    key = os.path.abspath(folder)  # no file-system calls: this runs before every atomic write
    if once and key in _swept:
        return []
    _swept.add(key)
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".") and PARTIAL in e.name]
    except OSError:
        return []
    for entry in entries:
        m = _PARTIAL_NAME.match(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed
