"""Inputs given through a pipe (bash's ``<(cmd)``, a FIFO, ``/dev/stdin`` fed by ``|``): a pipe has no
size and no seek, so a command that reads one input once reads it whole and parses it from memory;
only a regular file is called empty by its size."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ARTFORGE, invoke, subprocess_env

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")


@contextmanager
def fifo(folder: Path, data: bytes, name: str = "pipe"):
    """A named pipe that gives ``data`` to the first reader; a writer thread feeds it, and is let go
    at the end even when nothing opened the pipe (so a failing test cannot hang)."""
    path = folder / name
    os.mkfifo(path)

    def feed():
        try:
            with open(path, "wb") as fh:
                fh.write(data)
        except BrokenPipeError:  # the reader stopped early
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        yield path
    finally:
        if writer.is_alive():  # never opened: open it ourselves so the writer's open returns
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            writer.join(0.5)
            os.close(fd)
        writer.join(10)
        path.unlink()


@pytest.fixture
def picture(tmp_path, emoji) -> Path:
    path = tmp_path / "x.png"
    Image.fromarray(emoji[3], "RGBA").save(path)
    return path


def test_encode_convert_preview_read_a_picture_from_a_pipe(runner, tmp_path, picture):
    invoke(runner, "encode", "-c", "hsv544", picture, "-o", tmp_path / "file.npz")
    with fifo(tmp_path, picture.read_bytes()) as pipe:
        invoke(runner, "encode", "-c", "hsv544", pipe, "-o", tmp_path / "pipe.npz")
    assert np.array_equal(np.load(tmp_path / "pipe.npz")["tokens"], np.load(tmp_path / "file.npz")["tokens"])
    with fifo(tmp_path, picture.read_bytes()) as pipe:
        invoke(runner, "convert", pipe, "-c", "palette:pico8", "-o", tmp_path / "c.png")
    with fifo(tmp_path, picture.read_bytes()) as pipe:
        invoke(runner, "preview", pipe, "-c", "hsv433", "-o", tmp_path / "p.png")
    assert (tmp_path / "c.png").is_file() and (tmp_path / "p.png").is_file()


def test_decode_and_render_read_a_token_file_from_a_pipe(runner, tmp_path, picture):
    invoke(runner, "encode", "-c", "hsv544", picture, "-o", tmp_path / "t.npz")
    invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "file.png")
    with fifo(tmp_path, (tmp_path / "t.npz").read_bytes()) as pipe:
        invoke(runner, "decode", pipe, "-o", tmp_path / "pipe.png")
    assert (tmp_path / "pipe.png").read_bytes() == (tmp_path / "file.png").read_bytes()
    with fifo(tmp_path, (tmp_path / "t.npz").read_bytes()) as pipe:  # read once, though looked at twice
        assert "hsv renderer" in invoke(runner, "render", pipe, "-o", tmp_path / "r.png").output
    with fifo(tmp_path, b"ab\ncd\n") as pipe:  # not a token file: the codec's own format, as named
        assert "ascii renderer" in invoke(runner, "render", pipe, "-c", "ascii:2x2", "-o", tmp_path / "a.png").output
    with fifo(tmp_path, b"not a picture") as pipe:
        r = invoke(runner, "render", pipe, "-c", "hsv544", "-o", tmp_path / "b.png", ok=False)
    assert r.output.strip() == f"Error: {tmp_path / 'pipe'}: not an image (unrecognised format)"


def test_an_empty_pipe_and_a_device_are_named_for_what_they_are(runner, tmp_path, picture):
    with fifo(tmp_path, b"") as pipe:
        r = invoke(runner, "encode", "-c", "hsv544", pipe, "-o", tmp_path / "t.npz", ok=False)
    assert f"{tmp_path / 'pipe'}: empty input (the pipe gave no bytes)" in r.output
    with fifo(tmp_path, b"") as pipe:
        r = invoke(runner, "decode", pipe, "-o", tmp_path / "t.png", ok=False)
    assert r.output.strip() == f"Error: {tmp_path / 'pipe'}: empty input (the pipe gave no bytes)"
    if os.path.exists("/dev/zero"):  # endless: refused, never read
        # in a child with a timeout and a memory cap: were it read, it would fill this process's memory
        for args, says in ((["encode", "-c", "hsv544", "/dev/zero", "-o", tmp_path / "t.npz"],
                            "skipped /dev/zero: not a regular file or a pipe\n"),
                           (["data", "build", "/dev/zero", "-c", "hsv544", "-o", tmp_path / "z.h5"],
                            "Error: /dev/zero: not a regular file, folder or pattern\n")):
            done = subprocess.run([*ARTFORGE, *map(str, args)], capture_output=True, text=True, timeout=120,
                                  env=subprocess_env(), preexec_fn=_cap_memory)
            assert done.returncode == 1 and says in done.stderr, (args, done.returncode, done.stderr[-500:])


def _cap_memory() -> None:
    """A child's address space capped (4 GB: torch imports well within it), so a runaway read fails fast."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_data_build_and_palette_extract_take_one_piped_picture(runner, tmp_path, picture):
    from artforge.data.cache import open_cache

    with fifo(tmp_path, picture.read_bytes()) as pipe:
        invoke(runner, "data", "build", pipe, "-c", "hsv544", "-o", tmp_path / "d.h5", "-j", "1")
    with open_cache(tmp_path / "d.h5") as f:
        assert f["tokens"].shape == (1, 32, 32)
    with fifo(tmp_path, picture.read_bytes()) as pipe:
        invoke(runner, "palette", "extract", pipe, "-n", "4", "-o", tmp_path / "p.gpl")
    assert (tmp_path / "p.gpl").is_file()
    # a codec fitted to the data reads its source twice: refused before the pipe is read
    with fifo(tmp_path, picture.read_bytes()) as pipe:
        r = invoke(runner, "data", "build", pipe, "-c", "palette:auto", "-o", tmp_path / "a.h5", ok=False)
    assert r.output.strip() == (f"Error: {tmp_path / 'pipe'}: a pipe can be read once, and codec palette:auto/256 "
                                "reads its source twice (to fit, then to encode): save it to a file first")


def test_labels_from_a_pipe(runner, tmp_path, picture):
    """--labels <(cat l.csv) was "no such labels file"; a pipe has no suffix, so JSON or CSV is told by
    its first character."""
    import h5py

    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "in" / name).write_bytes(picture.read_bytes())
    for i, labels in enumerate((b"name,v\na.png,1\nb.png,2\n", b' {"a.png": {"v": 1}, "b.png": {"v": 2}}')):
        with fifo(tmp_path, labels) as pipe:
            invoke(runner, "data", "build", tmp_path / "in", "-c", "hsv433", "--labels", pipe,
                   "-o", tmp_path / f"{i}.h5")
        with h5py.File(tmp_path / f"{i}.h5") as f:
            assert f["labels"][:, 0].tolist() == [1.0, 2.0]
    with fifo(tmp_path, b"") as pipe:
        r = invoke(runner, "data", "build", tmp_path / "in", "-c", "hsv433", "--labels", pipe, "-o", tmp_path / "e.h5",
                   ok=False)
    assert r.output.strip() == f"Error: {tmp_path / 'pipe'}: empty input (the pipe gave no bytes)"


@pytest.mark.skipif(shutil.which("bash") is None or not sys.platform.startswith("linux"), reason="needs bash")
def test_process_substitution_and_piped_stdin(tmp_path, picture):
    """What a user types: ``<(cat x.png)`` and ``cat t.npz | artforge decode /dev/stdin``."""
    art = " ".join(ARTFORGE)
    script = (f"set -e; cd {tmp_path}; {art} encode -c hsv544 <(cat x.png) -o t.npz; "
              f"cat t.npz | {art} decode /dev/stdin -o y.png")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "t.npz")["tokens"].shape == (1, 32, 32)
    assert Image.open(tmp_path / "y.png").size == (32, 32)


def test_a_pipe_past_the_cap_is_refused_in_one_line(runner, tmp_path, picture, monkeypatch):
    """A pipe is held whole in memory, so what it may give is capped (fsutil.MAX_PIPE_BYTES); past the
    cap it is refused naming the pipe and the cap, read no further than the cap, for every kind of input."""
    import artforge.fsutil as fsutil

    monkeypatch.setattr(fsutil, "MAX_PIPE_BYTES", 1000)
    big = picture.read_bytes() + b"\0" * (8 << 20)  # a valid picture, then 8 MiB more
    says = "pipe: the pipe gives more than 1,000 bytes, the most artforge reads from a pipe; save it to a file first"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(picture.read_bytes())
    invoke(runner, "encode", "-c", "hsv544", picture, "-o", tmp_path / "t.npz")
    for args in (["decode", "{pipe}", "-o", tmp_path / "d.png"],  # a token file
                 ["render", "{pipe}", "-o", tmp_path / "r.png"],
                 ["convert", "{pipe}", "-c", "hsv544", "-o", tmp_path / "c.png"],  # a picture: skipped, not read
                 ["data", "build", "{pipe}", "-c", "hsv544", "-o", tmp_path / "b.h5", "-j", "1"],
                 ["data", "build", tmp_path / "in", "-c", "hsv544", "--labels", "{pipe}", "-o", tmp_path / "l.h5"],
                 ["data", "build", "{pipe}", "-c", "ascii:8x2", "-o", tmp_path / "a.h5", "-j", "1"]):  # text
        with fifo(tmp_path, big) as pipe:
            r = invoke(runner, *[pipe if a == "{pipe}" else a for a in args], ok=False)
        assert r.exit_code != 0, args
        assert says in r.output, (args, r.output)  # data build names a piped item by its name
        assert "Traceback" not in r.output
    with fifo(tmp_path, b"x" * 1000) as pipe:  # at the cap: read
        assert fsutil.read_pipe(pipe) == b"x" * 1000
    assert f"{fsutil.MAX_PIPE_BYTES:,}" == "1,000"
