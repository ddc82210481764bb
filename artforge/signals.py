"""Stopping cleanly on Ctrl-C (SIGINT) and SIGTERM.

SIGTERM, what ``timeout``, job schedulers and ``kill`` send, would end the process on the spot and
leave partial files behind; :func:`stop_cleanly` makes it unwind like Ctrl-C instead, so every
``atomic_path`` removes its temporary file, and the exit status is 143. Loops whose work must not be
cut at an arbitrary point (a pool of workers, which hangs when a worker is interrupted; an HDF5
write) use :func:`deferred_stop` and stop between units of work.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(SystemExit):
    """SIGTERM, raised so that cleanup runs; its exit status is 128 + the signal number."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _stop(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(128 + signum)


_done = False  # the command has finished its work: a stop signal now has nothing left to stop


def _on_stop_signal(signum, frame) -> None:
    if not _done:
        raise _stop(signum)


def stop_cleanly() -> None:
    """For the rest of the process (the CLI's entry point): Ctrl-C raises KeyboardInterrupt and
    SIGTERM :class:`Terminated`, until :func:`mark_done`; after it both are ignored."""
    if _main_thread():
        signal.signal(signal.SIGINT, _on_stop_signal)
        signal.signal(signal.SIGTERM, _on_stop_signal)


def mark_done() -> None:
    """The command succeeded: a late signal must not turn its exit 0 into a failure."""
    global _done
    _done = True


class DeferredStop:
    """Remembers the first SIGINT/SIGTERM; :meth:`check` raises it between units of work. A second
    signal stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _on_signal(self, signum, frame) -> None:
        if self.signum is not None:
            raise _stop(signum)
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise _stop(self.signum)


@contextlib.contextmanager
def deferred_stop() -> Iterator[DeferredStop]:
    """Within the block, Ctrl-C and SIGTERM only set a flag that ``stop.check()`` acts on."""
    stop = DeferredStop()
    if not _main_thread():  # signal handlers can only be set from the main thread
        yield stop
        return
    old = {s: signal.signal(s, stop._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def ignore_stops() -> None:
    """From here on, Ctrl-C and SIGTERM are held back (the process is about to exit).

    Blocking them covers only this thread; they are ignored too, because Python's shutdown puts every
    signal it handled back to the default action (end the process), and a signal then delivered to
    another thread (torch's worker threads) ended a command that had done its work with status 130."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    if _main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
