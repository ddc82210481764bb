"""Every hook is documented with its exact signature and has a test of its own (below)."""

from __future__ import annotations

import inspect
import json
import re
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artforge import hookspecs
from artforge.hookspecs import hookimpl
from artforge.plugins import get_plugin_manager

import toy_plugin
from conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in vars(hookspecs).items()
         if callable(fn) and hasattr(fn, "artforge_spec")]


def test_there_are_hooks():
    assert set(HOOKS) >= {"register_codecs", "register_models", "register_renderers", "register_datasets",
                          "register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook):
    sig = f"{hook}{inspect.signature(getattr(hookspecs, hook))}"
    doc = (ROOT / "docs" / "hooks.md").read_text()
    assert re.search(rf"^## {re.escape(sig)}$", doc, re.M), f"docs/hooks.md lacks a '## {sig}' section"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert f"def test_hook_{hook}(" in tests, f"no test_hook_{hook} in tests/"


@pytest.fixture
def toy():
    assert get_plugin_manager().register(toy_plugin, "toy")
    yield


def test_hook_register_codecs(runner, toy, tmp_path):
    codecs = {c["name"]: c for c in json.loads(invoke(runner, "codecs", "--json").stdout)}
    assert codecs["gray2"]["plugin"] == "toy"
    img = np.zeros((4, 4, 4), np.uint8)
    img[:2] = 255
    Image.fromarray(img, "RGBA").save(tmp_path / "half.png")
    invoke(runner, "encode", "-c", "gray2", tmp_path / "half.png", "-o", tmp_path / "t.npz")
    assert np.load(tmp_path / "t.npz")["tokens"][0, :, 0].tolist() == [1, 1, 0, 0]


def test_hook_register_renderers(runner, toy, tmp_path):
    img = np.full((4, 4, 4), 255, np.uint8)
    Image.fromarray(img, "RGBA").save(tmp_path / "white.png")
    invoke(runner, "encode", "-c", "gray2", tmp_path / "white.png", "-o", tmp_path / "t.npz")
    invoke(runner, "render", tmp_path / "t.npz", "-o", tmp_path / "r.png")
    assert np.array(Image.open(tmp_path / "r.png"))[0, 0].tolist() == [255, 0, 0, 255]  # the toy's red


def test_hook_register_models(runner, toy, tiny_cache, tmp_path):
    models = {m["name"]: m for m in json.loads(invoke(runner, "models", "--json").stdout)}
    assert models["unigram"]["plugin"] == "toy" and "smoothing" in models["unigram"]["config"]
    invoke(runner, "train", "--plugin", "unigram", "--data", tiny_cache, "--steps", "5", "-o", tmp_path / "run", "-q")
    assert (tmp_path / "run" / "best.pt").is_file()
    invoke(runner, "sample", tmp_path / "run", "-n", "4", "-o", tmp_path / "s.png")


def test_hook_register_datasets(runner, tmp_path, emoji):
    np.savez(tmp_path / "mine.npz", images=emoji[:10])
    plugin = types.SimpleNamespace(register_datasets=hookimpl(
        lambda register: register("mine", tmp_path / "mine.npz", description="ten emoji", codec="hsv322")))
    assert get_plugin_manager().register(plugin, "mydata")
    listed = {d["name"]: d for d in json.loads(invoke(runner, "datasets", "--json").stdout)}
    assert listed["builtin:mine"]["codec"] == "hsv322" and listed["builtin:mine"]["plugin"] == "mydata"
    invoke(runner, "data", "build", "builtin:mine", "-o", tmp_path / "c.h5", "-q")
    assert json.loads(invoke(runner, "data", "info", tmp_path / "c.h5", "--json").stdout)["items"] == 10


def test_hook_register_commands(runner):
    import click

    @click.command()
    @click.argument("who")
    def hello(who):
        """Say hello."""
        click.echo(f"hello {who}")

    plugin = types.SimpleNamespace(register_commands=hookimpl(lambda cli: cli.add_command(hello)))
    assert get_plugin_manager().register(plugin, "greeter")
    assert invoke(runner, "hello", "world").output.strip() == "hello world"
