"""saml-net: picture -> Symbol Art layers in one pass, trained through the quad renderer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from artforge.codecs import get_codec
from artforge.models import DataInfo
from artforge_saml.net import SamlNet, SamlNetConfig, anchors

from conftest import invoke

SIZE = 16


def _pictures(n: int, seed: int = 0) -> np.ndarray:
    """Coloured squares and discs on transparency, SIZE x SIZE RGBA."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    out = np.zeros((n, SIZE, SIZE, 4), np.uint8)
    for i in range(n):
        cx, cy, r = rng.uniform(5, 11), rng.uniform(5, 11), rng.uniform(3, 5)
        inside = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r) if i % 2 else \
            (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r)
        out[i][inside] = [*rng.integers(0, 256, 3), 255]
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from click.testing import CliRunner

    d = tmp_path_factory.mktemp("samlnet")
    np.savez(d / "shapes.npz", images=_pictures(48))
    invoke(CliRunner(), "data", "build", d / "shapes.npz", "-c", "hsv544", "-o", d / "c.h5", "-q")
    return d / "c.h5"


def _net(layers: int = 4) -> SamlNet:
    codec = get_codec("hsv544")
    info = DataInfo(codec.config(), codec.vocab_size, (SIZE, SIZE))
    torch.manual_seed(0)
    return SamlNet(SamlNetConfig(layers=layers, width=32, blocks=1, heads=2), info)


def test_anchors_tile_the_picture_back_to_front():
    a = anchors(7, 32)  # 1 + 4 + 2 of the 4x4 grid
    assert a.shape == (7, 8)
    assert a[-1].tolist() == [-16, -16, -16, 16, 16, -16, 16, 16]  # the back row covers it all
    sides = (a[:, 4] - a[:, 0]).tolist()
    assert sides == sorted(sides) and sides[0] == 8  # smaller squares in front


def test_training_through_the_renderer_lowers_the_error():
    net = _net()
    codec = get_codec("hsv544")
    tokens = torch.from_numpy(codec.encode(_pictures(8)).astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = net({"tokens": tokens})["loss"].item()
    for _ in range(40):
        loss = net({"tokens": tokens})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert net({"tokens": tokens})["loss"].item() < 0.6 * first
    rows = net.layers_for(net.pictures(tokens))
    assert rows.shape == (8, 4, 13) and set(rows[..., 0].unique().tolist()) <= {242.0, 244.0}  # circle, square


def test_bad_configs_are_clear_errors():
    codec = get_codec("hsv544")
    with pytest.raises(Exception, match="square pictures"):
        SamlNet(SamlNetConfig(), DataInfo(codec.config(), codec.vocab_size, (12, 16)))
    with pytest.raises(Exception, match="unknown symbol"):
        SamlNet(SamlNetConfig(symbols="square,star"), DataInfo(codec.config(), codec.vocab_size, (16, 16)))


def test_train_eval_convert_export(runner, cache, tmp_path):
    run = tmp_path / "run"
    invoke(runner, "train", "-p", "saml-net", "-d", cache, "--steps", 30, "-b", 16, "-s", "preset=tiny",
           "-s", "layers=6", "-o", run, "-q")
    figures = json.loads(invoke(runner, "eval", run, "--json", "--refine", 4).output)["figures"]
    assert figures["images"] > 0 and figures["layers_used"] <= 6
    for key in ("psnr_net", "psnr_quadtree", "psnr_quadtree_fit", "psnr_net_fit"):
        assert 0 < figures[key] < 100
    assert figures["ms_per_picture_net"] > 0 and figures["s_per_picture_net_fit"] > 0
    assert figures["psnr_net_fit"] >= figures["psnr_net"] - 1e-3  # the fit keeps its start when it cannot improve

    # convert: the net's layers as the fit's start (steps=0 keeps them as they are)
    Image.fromarray(_pictures(2, seed=5)[1]).resize((40, 24)).save(tmp_path / "p.png")
    r = invoke(runner, "convert", "-c", f"saml:8,steps=0,net={run}", tmp_path / "p.png", "-o", tmp_path / "p.saml")
    assert "saml-net start" in r.output
    layers = get_codec("saml").read(tmp_path / "p.saml")
    assert 0 < (layers[:, 0] > 0).sum() <= 6
    r = invoke(runner, "convert", "-c", f"saml:4,net={run}", tmp_path / "p.png", "-o", tmp_path / "q.saml", ok=False)
    assert "draws 6 layers, more than codec" in r.output and "Traceback" not in r.output
    r = invoke(runner, "convert", "-c", f"saml:8,net={tmp_path / 'nope'}", tmp_path / "p.png", "-o",
               tmp_path / "q.saml", ok=False)
    assert "no such run folder" in r.output

    r = invoke(runner, "export", run, "--onnx")
    assert "layers" in r.output
    r = invoke(runner, "sample", run, "-o", tmp_path / "s.png", ok=False)
    assert "cannot sample; it turns pictures into layers" in r.output and "net=RUN" in r.output


@pytest.mark.parametrize("setting, says", [("heads=0", "heads must be at least 1, got 0"),
                                           ("blocks=0", "blocks must be at least 1, got 0"),
                                           ("shift=-2", "shift must be 0 or more pixels, got -2")])
def test_settings_no_run_can_use_are_one_line_before_training(runner, cache, tmp_path, setting, says):
    # blocks=0 and shift=-2 built a model, and the first step died as an internal error
    r = invoke(runner, "train", "-p", "saml-net", "-d", cache, "--steps", 2, "-b", 4, "-s", "preset=tiny",
               "-s", setting, "-o", tmp_path / "r", "-q", ok=False)
    assert r.output.strip() == f"Error: saml-net: {says}"
    assert not (tmp_path / "r").exists()
