"""Plugin code that breaks its contract is named as the culprit, in one line, and never damages a run.

A third-party plugin written from docs/hooks.md, with bugs switched on by codec spec (``gray:vocab3``)
or model config (``--set sample_bug=offset``): the core checks what plugin code returns once per call
and blames the codec, model or renderer, not the files made from its output.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from artforge.codecs import Codec, get_codec
from artforge.hookspecs import hookimpl
from artforge.models import ArtModel
from artforge.plugins import get_plugin_manager

import toy_plugin
from conftest import invoke


class GrayCodec(Codec):
    """Five grey levels per pixel; the spec's argument switches a bug on."""

    name = "gray"
    description = "five grey levels (a test codec with switchable bugs)"

    def __init__(self, bug: str = ""):
        self.bug = bug
        if bug == "chatty":  # prints whenever it is built, as plugin code with debugging left in does
            print("gray codec: built")
        self.spec = f"gray:{bug}" if bug else "gray"
        self.vocab_size = 3 if bug == "vocab3" else 5  # vocab3: claims 3 levels, encodes 5

    @classmethod
    def from_spec(cls, args):
        return cls(args)

    def encode(self, images):
        if self.bug == "chatty":
            print(f"gray codec: encoding {len(images)} pictures")
        t = (np.asarray(images)[..., :3].mean(-1) * 5 // 256).astype(np.int64)
        if self.bug == "neg":
            return t - 1
        if self.bug == "float":
            return t.astype(np.float32)
        if self.bug == "flat":  # the N axis dropped
            return t.reshape(-1, t.shape[-1])
        return t

    def decode(self, tokens):
        t = self.check_tokens(tokens)
        if self.bug == "crashdecode":
            raise ValueError("decode table missing")
        v = (t * 63).astype(np.uint8)
        if self.bug == "decode3d":
            return v
        return np.stack([v, v, v, np.full_like(v, 255)], -1)


class _Squash(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)[:, 0]  # (B, H, W): the channel axis lost


def gray_renderer(codec):
    from artforge.renderers import ColorTableRenderer

    if codec.bug == "norender":
        raise RuntimeError("no renderer today")
    levels = torch.arange(5) * 63
    table = ColorTableRenderer(torch.stack([levels, levels, levels, torch.full((5,), 255)], 1).to(torch.uint8))
    return _Squash(table) if codec.bug == "render3d" else table


@dataclass
class GrayConfig:
    sample_bug: str = ""  # offset, flat, float, crash, list
    recon_bug: str = ""  # the same, for reconstruct and interpolate
    forward_bug: str = ""  # tensor, noloss, float, vector
    validate_bug: str = ""  # noloss, tensor
    evaluate_bug: str = ""  # tensor, vector, print


def _broken(t: torch.Tensor, bug: str):
    if bug == "offset":
        return t + 100
    if bug == "flat":
        return t.reshape(len(t), -1)
    if bug == "float":
        return t.float() + 0.5
    if bug == "crash":
        raise RuntimeError("sampler exploded")
    if bug == "list":
        return t.tolist()
    return t


class GrayModel(ArtModel):
    """Per-position grey-level frequencies, with switchable contract bugs."""

    name = "gray-model"
    description = "a test model with switchable bugs"
    Config = GrayConfig
    codecs = ("gray",)
    train_defaults = {"lr": 0.1, "batch_size": 2}

    def __init__(self, config, info):
        super().__init__(config, info)
        self.table = nn.Parameter(torch.zeros(info.vocab_size, *info.token_shape))

    def forward(self, batch, phase="main"):
        t = batch["tokens"]
        loss = F.cross_entropy(self.table.unsqueeze(0).expand(t.shape[0], *self.table.shape), t)
        bug = self.config.forward_bug
        if bug == "tensor":
            return loss
        if bug == "noloss":
            return {"nll": loss}
        if bug == "float":
            return {"loss": loss, "extra": 1.5}
        if bug == "vector":
            return {"loss": loss, "per_item": loss * torch.ones(t.shape[0])}
        return {"loss": loss}

    @torch.no_grad()
    def validate(self, batches):
        figures = super().validate(batches)
        if self.config.validate_bug == "noloss":
            return {"nll": figures["loss"]}
        if self.config.validate_bug == "tensor":
            return {k: torch.tensor(v) for k, v in figures.items()}
        return figures

    @torch.no_grad()
    def evaluate(self, batches, codec):
        figures = super().validate(batches)
        if self.config.evaluate_bug == "print":
            print("gray-model: evaluating")
        if self.config.evaluate_bug == "tensor":
            return {k: torch.tensor(v) for k, v in figures.items()}
        if self.config.evaluate_bug == "vector":
            return {**figures, "per_level": torch.arange(3.0)}
        return figures

    @torch.no_grad()
    def sample(self, n, generator=None, temperature=1.0, labels=None, **options):
        probs = self.table.softmax(0).movedim(0, -1).reshape(-1, self.info.vocab_size)
        idx = torch.multinomial(probs, n, replacement=True, generator=generator)
        return _broken(idx.T.reshape(n, *self.info.token_shape), self.config.sample_bug)

    @torch.no_grad()
    def reconstruct(self, tokens, labels=None):
        return _broken(tokens.clone(), self.config.recon_bug)

    @torch.no_grad()
    def interpolate(self, a, b, steps, labels=None):
        return _broken(a.expand(steps, *a.shape[1:]).clone(), self.config.recon_bug)


class GrayPlain(GrayModel):
    """sample() without **options, as a plugin author might write it."""

    name = "gray-plain"

    @torch.no_grad()
    def sample(self, n, generator=None, temperature=1.0, labels=None):
        return super().sample(n, generator, temperature, labels)


PLUGIN = types.SimpleNamespace(
    register_codecs=hookimpl(lambda register: register(GrayCodec)),
    register_renderers=hookimpl(lambda register: register("gray", gray_renderer)),
    register_models=hookimpl(lambda register: (register(GrayModel), register(GrayPlain))),
)


@pytest.fixture
def gray():
    assert get_plugin_manager().register(PLUGIN, "grayplug")
    yield


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """Twelve 4x4 pictures of every grey level, as an .npz source and as PNG files."""
    d = tmp_path_factory.mktemp("gray")
    rng = np.random.default_rng(0)
    images = np.full((12, 4, 4, 4), 255, np.uint8)
    images[..., :3] = rng.integers(0, 256, (12, 4, 4, 1), dtype=np.uint8)
    images[:, 0, 0, :3] = 0  # every level occurs: 0 ...
    images[:, 0, 1, :3] = 255  # ... to 4
    np.savez(d / "gray.npz", images=images, names=np.array([f"g{i}" for i in range(12)]))
    (d / "png").mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img, "RGBA").save(d / "png" / f"g{i}.png")
    return d


def _train(runner, pictures, tmp_path, *sets: str, model: str = "gray-model", codec: str = "gray",
           steps: int = 4, ok: bool = True, extra: tuple[str, ...] = ()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / f"{codec.replace(':', '-')}.h5"
    if not cache.exists():
        invoke(runner, "data", "build", pictures / "gray.npz", "-c", codec, "-j", "1", "-q", "-o", cache)
    args = [a for s in sets for a in ("--set", s)]
    run = tmp_path / "run"
    r = invoke(runner, "train", "--plugin", model, "--data", cache, "--steps", str(steps), "--eval-every", "2",
               "--set", "val_fraction=0.34", *args, *extra, "-q", "-o", run, ok=ok)
    return run, r


def _error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "internal error" not in lines[0], output
    return lines[0]


@pytest.mark.parametrize(("codec", "sets", "culprit"), [
    ("gray", ("sample_bug=offset",), "gray-model.sample() returned token values 10"),
    ("gray", ("sample_bug=crash",), "gray-model.sample() failed (RuntimeError: sampler exploded)"),
    ("gray:crashdecode", (), "codec gray:crashdecode's decode failed (ValueError: decode table missing)"),
])
def test_a_failing_sample_grid_is_one_warning_and_training_goes_on(runner, gray, pictures, tmp_path, codec, sets,
                                                                    culprit):
    run, r = _train(runner, pictures, tmp_path, *sets, codec=codec, steps=6)
    warnings = [line for line in r.output.splitlines() if "sample grid" in line]
    assert len(warnings) == 1 and culprit in warnings[0], r.output  # once, not at every interval
    assert "done at step 6" in r.output
    assert not list(run.glob("samples/*.png")) and (run / "last.pt").is_file()


def test_a_sample_sheet_too_large_to_open_is_a_warning_too(runner, gray, pictures, tmp_path, monkeypatch):
    import artforge.grid

    monkeypatch.setattr(artforge.grid, "MAX_PIXELS", 100)  # every sheet is "too large"
    run, r = _train(runner, pictures, tmp_path, steps=6)
    warnings = [line for line in r.output.splitlines() if "sample grid" in line]
    assert len(warnings) == 1 and "past the" in warnings[0] and "done at step 6" in r.output, r.output
    assert not list(run.glob("samples/*.png")) and (run / "last.pt").is_file()


def test_best_checkpoint_is_never_newer_than_last(runner, tiny_cache, tmp_path):
    """A run that fails between checkpoints can always be resumed once it has saved anything."""
    assert get_plugin_manager().register(toy_plugin, "toy")
    run = tmp_path / "run"
    r = invoke(runner, "train", "--plugin", "unigram", "--data", tiny_cache, "--steps", "10", "--eval-every", "1",
               "--set", "ckpt_every=100", "--set", "nan_at_step=2", "-q", "-o", run, ok=False)
    assert "loss became nan at step 3" in r.output
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2
    assert torch.load(run / "best.pt", weights_only=True)["step"] <= 2
    r = invoke(runner, "train", "--resume", "-o", run, "-q", ok=False)  # resumes (and meets the NaN again)
    assert "resumed" in r.output or "loss became nan at step 3" in r.output
    assert "missing" not in r.output


@pytest.mark.parametrize(("bug", "problem"), [
    ("vocab3", "token values 0..4, outside codec gray:vocab3's vocabulary of 3"),
    ("neg", "token values -1..3, outside codec gray:neg's vocabulary of 5"),
    ("float", "float32 tokens"),
    ("flat", "shape (48, 4) for 12 items"),
])
def test_codec_output_is_checked_before_it_is_written(runner, gray, pictures, tmp_path, bug, problem):
    spec = f"gray:{bug}"
    for args, out in ((("encode", "-c", spec, pictures / "png"), tmp_path / "t.npz"),
                      (("data", "build", pictures / "gray.npz", "-c", spec, "-j", "1", "-q"), tmp_path / "c.h5")):
        line = _error(invoke(runner, *args, "-o", out, ok=False).output)
        assert f"codec {spec}'s encode returned" in line and problem in line, line
        assert not out.exists()
    r = invoke(runner, "convert", "-c", spec, pictures / "png" / "g0.png", "-o", tmp_path / "c.npz", ok=False)
    line = _error(r.output)
    problem = {"flat": "shape (4, 4) for 1 item"}.get(bug, problem)
    assert f"codec {spec}'s convert returned" in line and problem in line, line
    assert not (tmp_path / "c.npz").exists()


@pytest.mark.parametrize(("bug", "problem"), [
    ("flat", "shape (3, 16); expected (3, 4, 4)"),
    ("float", "float32 tokens"),
    ("offset", "token values 10"),
    ("list", "list, not a tensor"),
])
def test_sample_checks_what_the_model_returns(runner, gray, pictures, tmp_path, bug, problem):
    run, _ = _train(runner, pictures, tmp_path, f"sample_bug={bug}", f"recon_bug={bug}", steps=2)
    out, toks = tmp_path / "s.png", tmp_path / "s.npz"
    line = _error(invoke(runner, "sample", run, "-n", "3", "-o", out, "--tokens", toks, ok=False).output)
    assert "gray-model.sample() returned" in line and problem in line, line
    assert not out.exists() and not toks.exists()
    line = _error(invoke(runner, "reconstruct", run, *sorted((pictures / "png").iterdir())[:3], "-o", out,
                         ok=False).output)
    assert "gray-model.reconstruct() returned" in line and problem in line, line
    a, b = pictures / "png" / "g0.png", pictures / "png" / "g1.png"
    line = _error(invoke(runner, "sample", run, "--interpolate", a, b, "-n", "3", "-o", out, ok=False).output)
    assert "gray-model.interpolate() returned" in line and problem.replace("(3, 4, 4)", "(N, 4, 4)") in line, line
    assert not out.exists()


@pytest.mark.parametrize(("bug", "problem"), [
    ("tensor", "got Tensor"),
    ("noloss", "got keys nll"),
    ("float", "its 'extra' is float"),
    ("vector", "its 'per_item' has shape (2,)"),
])
def test_forward_must_return_named_losses(runner, gray, pictures, tmp_path, bug, problem):
    _, r = _train(runner, pictures, tmp_path, f"forward_bug={bug}", ok=False)
    line = _error(r.output)
    assert "gray-model.forward must return dict[str, Tensor] with 'loss'" in line and problem in line, line


def test_validate_and_evaluate_figures(runner, gray, pictures, tmp_path):
    _, r = _train(runner, pictures, tmp_path, "validate_bug=noloss", ok=False)
    line = _error(r.output)
    assert "gray-model.validate must return a dict with 'loss'" in line and "got keys nll" in line, line
    # figures as 0-d tensors are numbers: taken as floats
    run, _ = _train(runner, pictures, tmp_path / "t", "validate_bug=tensor", "evaluate_bug=tensor")
    assert (run / "best.pt").is_file()
    invoke(runner, "eval", run)
    run, _ = _train(runner, pictures, tmp_path / "v", "evaluate_bug=vector")
    line = _error(invoke(runner, "eval", run, ok=False).output)
    assert "gray-model.evaluate must return" in line and "'per_level' is a Tensor of shape (3,)" in line, line


def test_json_output_stays_json_when_plugin_code_prints(runner, gray, pictures, tmp_path):
    """docs/hooks.md: stdout is the command's. A codec that prints when built or encoding and a model
    that prints in evaluate must not corrupt `--json` output: what they print goes to stderr."""
    run, _ = _train(runner, pictures, tmp_path, "evaluate_bug=print", codec="gray:chatty")
    cache = tmp_path / "gray-chatty.h5"
    commands = [("eval", run, "--json"), ("data", "info", cache, "--json"), ("runs", run, "--json"),
                ("runs", tmp_path, "--json"), ("models", "gray-model", "--json"), ("models", "--json"),
                ("codecs", "--json"), ("plugins", "--json"), ("datasets", "--json")]
    for args in commands:
        r = invoke(runner, *args)
        try:
            json.loads(r.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"artforge {' '.join(map(str, args))} printed more than JSON:\n{r.stdout}")
    r = invoke(runner, "eval", run, "--json")
    assert "gray-model: evaluating" in r.stderr and "gray codec: built" in r.stderr
    assert json.loads(r.stdout)["figures"]["loss"] > 0
    # without --json the output is for people: what plugins print stays where it was
    assert "gray-model: evaluating" in invoke(runner, "eval", run).stdout


def test_renderer_and_decode_failures_blame_the_plugin_not_the_file(runner, gray, pictures, tmp_path):
    g0 = pictures / "png" / "g0.png"
    for bug, command, problem in (
            ("norender", "render", "renderer gray could not be made for codec gray:norender (RuntimeError: "
                                   "no renderer today)"),
            ("render3d", "render", "renderer gray returned shape (1, 4, 4) for tokens of shape (1, 4, 4)"),
            ("crashdecode", "decode", "codec gray:crashdecode's decode failed (ValueError: decode table missing)"),
            ("decode3d", "decode", "codec gray:decode3d's decode returned shape (1, 4, 4)")):
        invoke(runner, "encode", "-c", f"gray:{bug}", g0, "-o", tmp_path / f"{bug}.npz")
        line = _error(invoke(runner, command, tmp_path / f"{bug}.npz", "-o", tmp_path / "x.png", ok=False).output)
        assert problem in line and "do not fit" not in line, line
        assert not (tmp_path / "x.png").exists()
    # a damaged file is still the file's fault, for both
    np.savez(tmp_path / "bad.npz", tokens=np.full((1, 4, 4), 7), codec=np.asarray('{"codec": "gray", "args": ""}'))
    # and so is one whose items are not the shape its codec declares (saml: 225 layers of 13 fields)
    np.savez(tmp_path / "layers.npz", tokens=np.zeros((1, 5, 13), np.int64),
             codec=np.asarray(json.dumps(get_codec("saml").config())))
    for command in ("render", "decode"):
        line = _error(invoke(runner, command, tmp_path / "bad.npz", "-o", tmp_path / "x.png", ok=False).output)
        assert "bad.npz: token values 7..7 fall outside codec gray's vocabulary of 5" in line, line
        line = _error(invoke(runner, command, tmp_path / "layers.npz", "-o", tmp_path / "x.png", ok=False).output)
        assert "layers.npz: items of shape (5, 13) do not fit codec saml (its items are (225, 13))" in line, line


def test_sample_passes_only_the_options_given(runner, gray, pictures, tmp_path):
    run, _ = _train(runner, pictures, tmp_path, model="gray-plain", steps=2)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000002.png"]
    invoke(runner, "sample", run, "-n", "3", "-o", tmp_path / "s.png", "--tokens", tmp_path / "s.npz")
    invoke(runner, "render", tmp_path / "s.npz", "-o", tmp_path / "r.png")
    invoke(runner, "reconstruct", run, pictures / "png", "-o", tmp_path / "rec.png")
    invoke(runner, "sample", run, "--interpolate", pictures / "png" / "g0.png", pictures / "png" / "g1.png",
           "-n", "3", "-o", tmp_path / "i.png")
    invoke(runner, "eval", run)
    line = _error(invoke(runner, "sample", run, "-n", "2", "--top-k", "2", "-o", tmp_path / "s.png", ok=False).output)
    assert "gray-plain.sample() takes no top_k" in line and "**options" in line, line


class OneArgInit(GrayModel):
    """An __init__ without the info argument, as a plugin author might write it."""

    name = "gray-one-arg"

    def __init__(self, config):
        super().__init__(config, None)


class BareSuper(GrayModel):
    """Calls super().__init__() without (config, info)."""

    name = "gray-bare-super"

    def __init__(self, config, info):
        nn.Module.__init__(self)
        ArtModel.__init__(self)


def test_a_model_that_cannot_be_built_is_blamed_not_the_settings(runner, gray, pictures, tmp_path):
    assert get_plugin_manager().register(types.SimpleNamespace(register_models=hookimpl(
        lambda register: (register(OneArgInit), register(BareSuper)))), "builders")
    _, r = _train(runner, pictures, tmp_path / "a", model="gray-one-arg", ok=False)
    line = _error(r.output)
    assert "builds it as OneArgInit(config, info)" in line and "--set" not in line, line
    _, r = _train(runner, pictures, tmp_path / "b", model="gray-bare-super", ok=False)
    line = _error(r.output)
    assert "with its default settings" in line and "BareSuper.__init__" in line and "--set" not in line, line
    _, r = _train(runner, pictures, tmp_path / "c", "sample_bug=offset", model="gray-bare-super", ok=False)
    assert "check the --set values" in _error(r.output)  # a setting the user gave may be the cause


class LevelsCodec(Codec):
    """A plugin codec whose config() stores its argument as a number, as docs/hooks.md allows ("rebuild
    exactly from plain JSON"), and whose from_config reads it back."""

    name = "levels"
    description = "N grey levels (a test codec that stores a number in its config)"

    def __init__(self, n: int = 5):
        self.n, self.spec, self.vocab_size = n, f"levels:{n}", n

    @classmethod
    def from_spec(cls, args):
        return cls(int(args or 5))

    @classmethod
    def from_config(cls, config):
        return cls(config["args"])

    def config(self):
        return {"codec": self.name, "spec": self.spec, "args": self.n}

    def encode(self, images):
        return (np.asarray(images)[..., :3].mean(-1) * self.n // 256).astype(np.int64)

    def decode(self, tokens):
        v = (self.check_tokens(tokens) * (255 // (self.n - 1))).astype(np.uint8)
        return np.stack([v, v, v, np.full_like(v, 255)], -1)


def test_a_plugin_codec_may_store_args_that_are_not_text(runner, pictures, tmp_path):
    """Only the default from_config (and artforge's own codecs) read 'args' as spec text: a plugin codec
    with its own config()/from_config may store a number there, and its token files decode."""
    plugin = types.SimpleNamespace(register_codecs=hookimpl(lambda register: register(LevelsCodec)))
    assert get_plugin_manager().register(plugin, "levelsplug")
    invoke(runner, "encode", "-c", "levels:4", pictures / "png", "-o", tmp_path / "t.npz")
    r = invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "t.png")
    assert "decoded 12 with levels:4" in r.output, r.output
