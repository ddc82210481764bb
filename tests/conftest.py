"""Shared fixtures: a CLI runner, small image sets made from the built-in data, tiny caches."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from artforge.plugins import reset_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
EMOJI = ROOT / "plugins" / "artforge_hsv" / "data" / "emoji32.npz"


def _first_party() -> str:
    """artforge's own entry points, as ARTFORGE_LOAD_PLUGINS names them."""
    from importlib.metadata import entry_points

    from artforge.plugins import CORE_DIST, ENTRY_POINT_GROUP

    return ",".join(sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)
                           if getattr(getattr(ep, "dist", None), "name", None) == CORE_DIST))


FIRST_PARTY = _first_party()


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch):
    """Every test starts with freshly loaded plugins: artforge's own only, so a third-party plugin the
    user has installed (whose codec family may overlap a test's toy plugin) cannot change what the
    tests see. Tests of entry-point loading use ``also_load`` or ``subprocess_env``."""
    for var in ("ARTFORGE_STRICT_PLUGINS", "ARTFORGE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ARTFORGE_LOAD_PLUGINS", FIRST_PARTY)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def also_load(monkeypatch):
    """For tests of entry-point loading: ``also_load("name", ...)`` loads the entry points a test
    made, beside artforge's own (still none the user installed)."""
    def load(*names: str) -> None:
        monkeypatch.setenv("ARTFORGE_LOAD_PLUGINS", ",".join([FIRST_PARTY, *names]))
        reset_plugin_manager()

    return load


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a shared machine extra threads only wait."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, ok: bool = True):
    """Run `artforge ARGS`; assert the exit status (0 when ok, non-zero otherwise)."""
    from artforge.cli import cli

    result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"artforge {' '.join(map(str, args))} failed:\n{result.output}"
    else:
        assert result.exit_code != 0, f"artforge {' '.join(map(str, args))} should have failed:\n{result.output}"
        assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="session")
def emoji() -> np.ndarray:
    with np.load(EMOJI) as z:
        return z["images"][:64]


@pytest.fixture(scope="session")
def emoji_dir(tmp_path_factory, emoji) -> Path:
    """24 emoji as 32x32 PNG files in two sub-folders."""
    from PIL import Image

    d = tmp_path_factory.mktemp("emoji")
    for i, img in enumerate(emoji[:24]):
        sub = d / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(img, "RGBA").save(sub / f"e{i:03d}.png")
    return d


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, emoji) -> Path:
    """64 emoji at 8x8 with hsv322 (vocab 257): a cache small models train on in seconds."""
    from artforge.data.cache import build_cache

    d = tmp_path_factory.mktemp("tiny")
    np.savez(d / "tiny.npz", images=emoji, names=np.array([f"e{i:03d}" for i in range(len(emoji))]))
    reset_plugin_manager()
    r = build_cache(str(d / "tiny.npz"), "hsv322", d / "tiny.h5", size=8, workers=1, progress=False)
    assert r.n_items == len(emoji)
    return d / "tiny.h5"


def subset_cache(folder: Path, source: Path, n: int, codec: str, size: int) -> Path:
    """A cache of the first ``n`` images of a built-in ``.npz`` set, fitted to ``size``."""
    from artforge.data.cache import build_cache

    with np.load(source) as z:
        np.savez(folder / "subset.npz", images=z["images"][:n], names=z["names"][:n])
    reset_plugin_manager()
    build_cache(str(folder / "subset.npz"), codec, folder / "subset.h5", size=size, workers=1, progress=False)
    return folder / "subset.h5"


def subprocess_env(*plugins: str, **extra: str) -> dict:
    """The environment of an artforge subprocess: artforge's own plugins and the ``plugins`` a test
    made, not those the user installed (as in-process)."""
    env = dict(os.environ)
    env["ARTFORGE_LOAD_PLUGINS"] = ",".join([FIRST_PARTY, *plugins])
    env.pop("ARTFORGE_STRICT_PLUGINS", None)
    env.update(extra)
    return env


ARTFORGE = [sys.executable, "-m", "artforge"]

#: `artforge train` options for the smallest hsv-transformer (one layer): a run in a second or two
TINY_HSV = ["--plugin", "hsv-transformer", "--set", "preset=tiny", "--set", "n_layer=1", "--batch-size", "8", "-q"]


_CLI_RUNS = """
import json, sys
from click.testing import CliRunner
from artforge.cli import cli
runs = [CliRunner().invoke(cli, args) for args in json.loads(sys.argv[1])]
print(json.dumps([[r.exit_code, r.output] for r in runs]))
"""


def as_a_plain_user(*commands: list) -> list:
    """Run artforge commands (each in CliRunner, all in one process) where file permissions hold: as
    this user, or, for root, with the two capabilities that let root read and write anything dropped."""
    import shutil
    import subprocess
    import sys

    cmd = [sys.executable, "-c", _CLI_RUNS, json.dumps([[str(a) for a in c] for c in commands])]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        drop = "-dac_override,-dac_read_search"
        if setpriv is None or subprocess.run([setpriv, f"--bounding-set={drop}", "true"]).returncode:
            pytest.skip("root reads every file, and setpriv cannot drop that here")
        cmd = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *cmd]
    # wide tables: at rich's 80-column default a row folds over lines as the tmp path grows
    env = {**subprocess_env(), "COLUMNS": "1000"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
