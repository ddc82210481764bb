"""User-facing errors: the CLI prints them as one line, with no traceback."""

from __future__ import annotations

import os


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (cut to ``limit``), or its class name when it has none:
    libraries' errors often run over many lines, and the CLI prints one."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def shown(name: str | os.PathLike) -> str:
    """A file name as one line of output: line breaks (legal in names on Linux) escaped as \\n, \\r, and
    bytes that are not UTF-8 (surrogate escapes to Python) as \\xNN, which a UTF-8 terminal or pipe whose
    encoder is strict (PYTHONIOENCODING=utf-8, a UTF-8 locale other than C.UTF-8) would refuse, ending
    the command in UnicodeEncodeError."""
    return utf8_text(str(name)).translate({10: "\\n", 13: "\\r"})


def as_text(value) -> str:
    """An item name from a numpy array as text: a bytes name (an ``S`` array) is decoded, not shown as
    ``b'cat'``; bytes that are not UTF-8 become ``\\xNN`` escapes."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def utf8_text(text: str) -> str:
    """``text`` as text that encodes to UTF-8, for files that store UTF-8 (HDF5 strings): a file name that
    is not UTF-8 (legal on Linux) reaches Python with surrogate escapes (``b'\\xff'`` as ``'\\udcff'``),
    which no UTF-8 encoder takes; those bytes become ``\\xNN`` escapes, as :func:`as_text` shows them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name makes (from JSON's \\ud800, say)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
_flags_warned: set[str] = set()


def env_flag(name: str) -> bool:
    """An on/off environment variable (ARTFORGE_STRICT_PLUGINS, ARTFORGE_DEBUG): 1, true, yes, on turn it
    on; unset, empty, 0, false, no, off leave it off. Anything else is off too, with one warning line, so
    that ``=true`` or ``=0`` means what it says and a typo does not pass for the setting."""
    value = os.environ.get(name, "").strip().lower()
    if value in _ON or value in _OFF:
        return value in _ON
    if name not in _flags_warned:
        _flags_warned.add(name)
        import sys

        print(f"artforge: warning: {name}={os.environ[name]!r} is neither on ({', '.join(_ON)}) nor off "
              f"({', '.join(_OFF[1:])}, or empty): taken as off", file=sys.stderr)
    return False


def env_int(name: str, default: int, minimum: int = 0) -> int:
    """A whole-number environment variable (torchrun's WORLD_SIZE, RANK, LOCAL_RANK): ``default`` when
    unset or empty; anything that is not a whole number of at least ``minimum`` is one ArtforgeError
    naming the variable and its value, not a ValueError from int()."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise ArtforgeError(f"environment variable {name}={os.environ[name]!r} is not a whole number of at least "
                            f"{minimum}; torchrun sets it for distributed training (unset it to train as one "
                            "process)")
    return number


def distributed_env() -> tuple[int, int, int]:
    """(WORLD_SIZE, RANK, LOCAL_RANK) as torchrun sets them: (1, 0, 0) outside torchrun. Some launchers
    set LOCAL_RANK=-1 to mean "not distributed": one process takes it as 0; several may not."""
    world, rank = env_int("WORLD_SIZE", 1, 1), env_int("RANK", 0)
    local = env_int("LOCAL_RANK", 0, -1 if world == 1 else 0)
    return world, rank, max(local, 0)


class ArtforgeError(Exception):
    """An error caused by the user's input or environment, shown as one line."""


class ContractError(ArtforgeError):
    """Plugin code (a codec, model or renderer) returned what its contract rules out, or failed on input
    that passed the checks; the message names that code, not the files made from or fed to it."""


class BadInput(ArtforgeError):
    """A file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{shown(self.path)}: {reason}")  # a name's line break must not split the line
