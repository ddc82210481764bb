"""Worker processes for cache builds: results in job order, and a stop that always works.

``multiprocessing.Pool`` shares one lock among its workers' task queue, and an idle worker holds
it while it waits. A worker killed then (SIGTERM to the whole process group, as job schedulers
send) takes the lock with it, and the pool hangs when it shuts down. Here each worker has a queue
and a pipe of its own; workers ignore Ctrl-C and SIGTERM, and the parent, which decides when to
stop, kills and reaps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from artforge.errors import ArtforgeError

IN_FLIGHT = 2  # jobs queued per worker, so none waits while the parent writes


def _exit_with_parent(every: float = 0.5) -> None:
    """End this worker once its parent is gone. A parent killed outright (SIGKILL, the OOM killer) never
    sends the stop or kills its workers, and a worker waits on its queue forever: a forked one holds
    the queue's write end itself, so it never sees the end of it."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:  # an orphan is handed to init (or a subreaper)
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="artforge-parent-watch", daemon=True).start()


def _serve(jobs, results, fn: Callable, init: Callable, init_args: tuple) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the build, between jobs
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent()
    init(*init_args)
    while True:
        try:
            job = jobs.get()
        except (EOFError, OSError):  # the parent is gone
            return
        if job is None:
            return
        try:
            out = (True, fn(job))
        except ArtforgeError as exc:  # bad input the job could not skip: its own message
            out = (False, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: the parent reports it in one line
            out = (False, f"a worker failed: {type(exc).__name__}: {exc}")
        try:
            results.send(out)
        except (EOFError, OSError):
            return


def ordered_map(fn: Callable, jobs: list, workers: int, init: Callable, init_args: tuple, ctx) -> Iterator[Any]:
    """``fn(job)`` for each job, in order, over ``workers`` processes made with context ``ctx``
    (each runs ``init(*init_args)`` first). Ctrl-C and SIGTERM in the parent stop it between jobs."""
    from artforge.signals import deferred_stop

    procs, queues, pipes = [], [], []
    with deferred_stop() as stop:
        try:
            for _ in range(workers):
                q = ctx.Queue()
                receive, send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_serve, args=(q, send, fn, init, init_args), daemon=True)
                p.start()
                send.close()
                procs.append(p)
                queues.append(q)
                pipes.append(receive)
            sent = 0
            for i in range(len(jobs)):
                while sent < len(jobs) and sent < i + IN_FLIGHT * workers:
                    queues[sent % workers].put(jobs[sent])
                    sent += 1
                w = i % workers
                while not pipes[w].poll(0.2):  # short waits: a stop is seen even while a job runs
                    stop.check()
                    if not procs[w].is_alive():
                        raise ArtforgeError(f"a worker process died (exit code {procs[w].exitcode}); "
                                            "try again with -j 1 to see the item that kills it")
                ok, value = pipes[w].recv()
                if not ok:
                    raise ArtforgeError(value)
                stop.check()
                yield value
            for q in queues:
                q.put(None)
            for p in procs:
                p.join(timeout=10)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                p.join()
            for q in queues:
                q.cancel_join_thread()  # a killed worker never reads what is left in its queue
                q.close()
            for r in pipes:
                r.close()
