"""The third-party example (docs/examples/artforge-braille) installs and works like any plugin."""

from __future__ import annotations

import subprocess
import sysconfig
import venv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "artforge-braille"


@pytest.fixture(scope="module")
def throwaway_venv(tmp_path_factory) -> Path:
    """A new virtual environment that also sees this test environment's site-packages."""
    d = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(d)
    py = d / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    # addsitedir (not a bare path) so the editable-install hooks in our site-packages work too
    Path(site, "_artforge_test_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    r = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                        str(EXAMPLE)], capture_output=True, text=True, env=subprocess_env())
    assert r.returncode == 0, r.stderr
    return py


def test_example_plugin_is_listed_and_encodes(throwaway_venv, tmp_path):
    env = subprocess_env("braille")
    out = subprocess.run([throwaway_venv, "-m", "artforge", "plugins", "--json"], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    import json

    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert plugins["braille"]["provides"]["codecs"] == ["braille"]
    assert plugins["braille"]["dist"] == "artforge-braille" and not plugins["braille"]["errors"]
    # and as a user runs artforge, ARTFORGE_LOAD_PLUGINS unset: every installed plugin loads, this one too
    default = {k: v for k, v in env.items() if k != "ARTFORGE_LOAD_PLUGINS"}
    out = subprocess.run([throwaway_venv, "-m", "artforge", "plugins", "--json"], capture_output=True, text=True,
                         env=default)
    assert out.returncode == 0, out.stderr
    braille = next(p for p in json.loads(out.stdout) if p["name"] == "braille")
    assert braille["provides"]["codecs"] == ["braille"] and not braille["errors"]
    img = np.full((8, 4, 4), 255, np.uint8)
    img[0, 0, :3] = 0  # dot 1
    img[7, 1, :3] = 0  # bottom-right pixel of the lower-left cell: dot 8
    Image.fromarray(img, "RGBA").save(tmp_path / "dots.png")
    r = subprocess.run([throwaway_venv, "-m", "artforge", "encode", "--codec", "braille", tmp_path / "dots.png",
                        "-o", tmp_path / "b.npz"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    tokens = np.load(tmp_path / "b.npz")["tokens"][0]
    assert tokens.shape == (2, 2)
    assert tokens[0, 0] == 0b00000001 and tokens[1, 0] == 0b10000000 and tokens.sum() == 129


def test_example_plugin_is_absent_from_this_environment():
    """The example is only installed in the throwaway environment. Asked of the installed entry points,
    not of `artforge codecs` under subprocess_env, which loads artforge's own plugins only and so
    would never list it."""
    from importlib.metadata import entry_points

    from artforge.plugins import ENTRY_POINT_GROUP

    assert "braille" not in {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
