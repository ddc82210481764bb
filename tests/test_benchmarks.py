"""The benchmark scripts still run: nothing else exercises them, and they reach into internals
(the fixed-shape decoder, private codec tables) that change under them. Smoke runs only, seconds
each; the figures themselves come from `make bench` and go into docs/benchmarks.md by hand."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))


@pytest.fixture
def bench_path(monkeypatch):
    """benchmarks/ on sys.path, as run.py and a script run alone see it; afterwards its modules
    (``common``, ``run``, ...) and the paths they insert themselves are gone again."""
    monkeypatch.setattr(sys, "path", [str(BENCH), *sys.path])
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name in SCRIPTS:
            del sys.modules[name]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_imports(bench_path, name):
    module = importlib.import_module(name)
    if name.startswith("bench_"):  # run.py calls main() of each
        assert callable(module.main)


def test_decode_ops_counts_a_fixed_shape_step(bench_path, one_thread):
    from decode_ops import count_step

    ops = count_step("tiny", n=2, bucket=128)
    assert ops["mm"] > 0 and sum(ops.values()) > 20


def test_profile_hsv_smoke_run():
    """The CPU smoke run its docstring gives, trimmed to one step of training."""
    cmd = [sys.executable, str(BENCH / "profile_hsv.py"), "--device", "cpu", "--preset", "tiny", "--batch", "2",
           "--steps", "1", "--rows", "0", "--only", "train"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "bare train step, tiny, batch 2" in out.stdout


def test_gpu_owed_parses():
    assert subprocess.run(["bash", "-n", str(BENCH / "gpu_owed.sh")]).returncode == 0


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def test_gpu_owed_steps_say_when_they_fail_and_the_script_goes_on(tmp_path):
    """issue5 where every step fails (a stub python3): each says so in one line, in its log too, and
    the next step still runs. One GPU call runs all of them; a silent failure would cost the call."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    _stub(stubs, "python3", '[ "$2" = pip ] && exit 0\necho "ran $*"\nexit 3\n')
    _stub(stubs, "nvidia-smi", "echo stub GPU\n")
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "OUT": str(tmp_path / "out")}
    out = subprocess.run(["bash", str(BENCH / "gpu_owed.sh"), "issue5"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    said = [line for line in out.stdout.splitlines() if line.startswith("== step")]
    assert len(said) == 5 and all("failed (exit status 3)" in line for line in said), out.stdout
    log = (tmp_path / "out" / "train-lse-autotune-128.txt").read_text()
    assert "--compile-mode max-autotune-no-cudagraphs" in log and "failed (exit status 3)" in log


def test_gpu_owed_step_says_when_it_runs_out_of_time(tmp_path):
    script = (BENCH / "gpu_owed.sh").read_text()
    function = script[script.index("step() {"):]
    function = function[: function.index("\n}\n") + 3]
    out = subprocess.run(["bash", "-c", function + "step slow 1 sleep 20"], env={**os.environ, "OUT": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    assert "== step slow: stopped at its 1-s limit" in out.stdout
    assert "stopped at its 1-s limit" in (tmp_path / "slow.txt").read_text()


def test_gpu_owed_last_step_never_runs_past_the_call(tmp_path):
    """issue5's last step gets what is left of the 600-s call: its limit plus timeout's 10-s kill
    grace ends inside 600 s however long the steps before took (bash reads SECONDS from the
    environment), or it is skipped, saying so."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    _stub(stubs, "python3", "exit 0\n")
    _stub(stubs, "nvidia-smi", "echo stub GPU\n")
    _stub(stubs, "timeout", 'echo "limit $3"\nexit 0\n')  # timeout -k 10 LIMIT CMD...
    for start in (0, 450, 530, 550):
        env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"),
               "SECONDS": str(start)}
        out = subprocess.run(["bash", str(BENCH / "gpu_owed.sh"), "issue5"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        limits = [int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("limit ")]
        if len(limits) == 5:
            assert start + limits[-1] + 10 <= 600, (start, limits)
        else:
            assert len(limits) == 4 and "== step train-lse-autotune-128: skipped" in out.stdout, out.stdout
