"""The benchmark scripts still run: nothing else exercises them, and they reach into internals
(the fixed-shape decoder, private codec tables) that change under them. Smoke runs only, seconds
each; the figures themselves come from `make bench` and go into docs/benchmarks.md by hand."""

from __future__ import annotations

import importlib
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
