"""Stopping commands from outside: Ctrl-C and SIGTERM (to the process or its whole group, as a
terminal or a job scheduler sends them) end them in one line, leave no partial files and keep
what was there before; partial files of writers killed outright are swept by the next write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ARTFORGE, invoke, subprocess_env

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# a codec as fast as hsv but for a pause per job, so a build is reliably mid-way when signalled
SLOW_CODEC = """
    import time
    from artforge.hookspecs import hookimpl
    from artforge_hsv.codec import HSVCodec

    class SlowHSV(HSVCodec):
        name = "slowhsv"

        def config(self):
            return {**super().config(), "codec": "slowhsv"}

        def encode(self, batch):
            time.sleep(0.3)
            return super().encode(batch)

    @hookimpl
    def register_codecs(register):
        register(SlowHSV)
"""


@pytest.fixture(scope="module")
def slow_env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("slowplugin")
    info = root / "slow_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[artforge]\nslow = slow_codec_mod\n")
    (root / "slow_codec_mod.py").write_text(textwrap.dedent(SLOW_CODEC))
    return subprocess_env("slow", PYTHONPATH=str(root))


@pytest.fixture(scope="module")
def many(tmp_path_factory, emoji) -> Path:
    """40 jobs' worth of 8x8 pictures: about 6 s of building over two workers."""
    d = tmp_path_factory.mktemp("many")
    small = emoji[:, ::4, ::4]
    np.savez(d / "many.npz", images=np.concatenate([small] * (40 * 256 // len(small) + 1)))
    return d / "many.npz"


def _signalled(cmd: list, env: dict, sig: int, delay: float, group: bool) -> subprocess.CompletedProcess:
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    time.sleep(delay)
    if group:
        os.killpg(p.pid, sig)
    else:
        p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # a hang: the failure this test is about
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        err += "\n(hung: killed after 60 s)"
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


@pytest.mark.parametrize("sig, group, code", [(signal.SIGINT, True, 130), (signal.SIGTERM, True, 143),
                                              (signal.SIGTERM, False, 143)])
def test_a_stopped_build_keeps_the_old_cache_and_leaves_nothing(slow_env, many, tmp_path, sig, group, code):
    out = tmp_path / "c.h5"
    build = [*ARTFORGE, "data", "build", many, "-o", out, "-j", "2", "-q", "--force", "-c"]
    r = subprocess.run([*build, "hsv322"], env=slow_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    before = out.read_bytes()
    r = _signalled([*build, "slowhsv322"], slow_env, sig, 2.5, group)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5"]  # no partial file


def test_partials_of_killed_writers_are_swept(runner, many, tmp_path, emoji_dir):
    """SIGKILL leaves a partial file; the next write into that folder removes it."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".t.npz.partial-{dead.pid}-abc123"
    stale.write_bytes(b"half")
    live = tmp_path / f".t.npz.partial-{os.getppid()}-abc123"  # a writer still running keeps its file
    live.write_bytes(b"busy")
    invoke(runner, "encode", "-c", "hsv322", emoji_dir / "a", "-o", tmp_path / "other.npz")
    assert not stale.exists() and live.exists()


def test_sigterm_to_the_group_stops_training_with_a_checkpoint(tiny_cache, tmp_path):
    """A scheduler's SIGTERM reaches the DataLoader workers too; the run must still save last.pt."""
    import torch

    run = tmp_path / "run"
    cmd = [*ARTFORGE, "train", "--plugin", "hsv-transformer", "--data", tiny_cache, "--set", "preset=tiny",
           "--steps", "100000", "-b", "8", "-j", "2", "-o", run]
    p = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
        assert p.poll() is None and time.time() < deadline, "training did not start"
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 143, err  # 128 + SIGTERM, as for every other command
    assert "interrupted at step" in out and "Traceback" not in err
    assert torch.load(run / "last.pt", weights_only=True)["step"] > 0


LATE_STOP = """
import os, subprocess, sys, threading, time
from artforge import signals
signals.stop_cleanly()
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # a thread that does not block signals
signals.mark_done()
signals.ignore_stops()  # as main() does once the command succeeded
# Ctrl-C, held down until this process is gone (and reaped: its pipes must not be held by the loop)
subprocess.Popen(["sh", "-c", f"while kill -INT {os.getpid()} 2>/dev/null; do :; done"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.2)
"""


def test_a_stop_signal_during_exit_does_not_undo_a_finished_command():
    """Python's shutdown put the SIGINT handler back to the default action (end the process): a Ctrl-C
    then delivered to any other thread (torch has several) turned a finished command's exit 0 into
    130, with no word (seen on `complete`)."""
    r = subprocess.run([sys.executable, "-c", LATE_STOP], env=subprocess_env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr)


KILLED_PARENT = """
import multiprocessing as mp, os, time
from artforge.data.workers import ordered_map

def slow(job):
    time.sleep(0.1)
    return job

def init():
    pass

if __name__ == "__main__":
    for start in ("fork", "spawn"):  # spawn too: where fork is not used (macOS, Windows)
        if start in mp.get_all_start_methods():
            ctx = mp.get_context(start)
            break
    for x in ordered_map(slow, list(range(10000)), 2, init, (), ctx):
        if x == 2:
            print(" ".join(str(p.pid) for p in mp.active_children()), flush=True)
            os.kill(os.getpid(), 9)  # as the OOM killer ends a build: no stop reaches the workers
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie not yet reaped: it has ended
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_build_workers_end_when_the_build_is_killed_outright(tmp_path):
    """A build killed outright (SIGKILL, the OOM killer) left its worker processes waiting on their
    queues forever, each with its copy of the codec and source."""
    script = tmp_path / "killed_parent.py"
    script.write_text(KILLED_PARENT)
    out = tmp_path / "pids"  # a file, not a pipe: workers that live on would hold a pipe open
    with open(out, "w") as fh:
        r = subprocess.run([sys.executable, script], env=subprocess_env(), stdout=fh, stderr=subprocess.STDOUT,
                           timeout=60)
    assert r.returncode == -signal.SIGKILL, out.read_text()
    pids = [int(p) for p in out.read_text().split()]
    assert len(pids) == 2
    deadline = time.time() + 15
    try:
        while not all(_gone(p) for p in pids):
            assert time.time() < deadline, "the workers outlived their killed parent"
            time.sleep(0.1)
    finally:
        for p in pids:
            if not _gone(p):
                os.kill(p, signal.SIGKILL)


EARLY_STOP = """
import builtins, signal, sys
real = builtins.__import__

def stopped(name, *args, **kwargs):
    if name == "click":  # while the command group is still being imported
        signal.raise_signal(signal.{sig})
    return real(name, *args, **kwargs)

builtins.__import__ = stopped
sys.argv = ["artforge", "--version"]
from artforge.__main__ import main  # the console script's entry point
main()
"""


@pytest.mark.parametrize("sig, code, line", [("SIGINT", 130, "Aborted!"), ("SIGTERM", 143, "Terminated (SIGTERM).")])
def test_a_stop_while_the_command_starts_is_one_line(sig, code, line):
    """Ctrl-C in the first tenth of a second (while click and the commands are imported) printed a
    traceback; it is now the one line a stop prints later."""
    r = subprocess.run([sys.executable, "-c", EARLY_STOP.replace("{sig}", sig)], env=subprocess_env(),
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr.strip()) == (code, line), r.stderr
