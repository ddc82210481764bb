"""The saml plugin: .saml files, tokens, the quad renderer, and picture -> Symbol Art fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from artforge.codecs import get_codec
from artforge.errors import ArtforgeError, BadInput
from artforge_saml.codec import layers_to_tokens, tokens_to_layers
from artforge_saml.renderer import SamlRenderer
from artforge_saml.samlfile import format_saml, parse_saml

from conftest import invoke

SAML = """<?xml version="1.0" encoding="utf-8"?>
<sa name="test" visible="true" version="4" author="0" width="192" height="96" sound="1">
  <layer name="front" visible="true" type="243" color="#ff0000" alpha="1"
         ltx="-10" lty="-10" lbx="-10" lby="10" rtx="10" rty="-10" rbx="10" rby="10"/>
  <g name="group" visible="true">
    <layer name="back" visible="true" type="241" color="#0000FF" alpha="1"
           ltx="-30" lty="-30" lbx="-30" lby="30" rtx="30" rty="-30" rbx="30" rby="30"/>
    <layer name="off" visible="false" type="243" color="#00ff00" alpha="1"
           ltx="0" lty="0" lbx="0" lby="5" rtx="5" rty="0" rbx="5" rby="5"/>
  </g>
  <g name="hidden group" visible="false">
    <layer type="243" color="#00ff00" alpha="1" ltx="0" lty="0" lbx="0" lby="5" rtx="5" rty="0" rbx="5" rby="5"/>
  </g>
  <layer type="243" color="#ffffff" alpha="0.5"
         ltx="-300" lty="0" lbx="-300" lby="4" rtx="90" rty="0" rbx="90" rby="4"/>
</sa>
"""


def _pixel(img: torch.Tensor, x: float, y: float) -> list[float]:
    """The RGBA pixel at canvas coordinates (x, y) of a (1, 4, 96, 192) render."""
    return [round(float(v), 3) for v in img[0, :, int(y + 48), int(x + 96)]]


def test_parse_flattens_groups_drops_hidden_and_clamps():
    art = parse_saml(SAML)
    assert art.layers.shape == (3, 13) and art.hidden == 2 and art.clamped == 1
    assert art.layers[0].tolist() == [243, 255, 0, 0, 7, -10, -10, -10, 10, 10, -10, 10, 10]
    assert art.layers[1, :4].tolist() == [241, 0, 0, 255]  # upper-case hex is fine
    assert art.layers[2, 4] == 4 and art.layers[2, 5] == -128  # alpha 0.5 -> step 4; x clamped


layer_rows = st.lists(
    st.tuples(st.integers(0, 2046), *[st.integers(0, 255)] * 3, st.integers(0, 7),
              *[st.integers(-128, 127)] * 8),
    min_size=0, max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(layer_rows)
def test_format_then_parse_is_exact(rows):
    layers = np.array(rows, np.int64).reshape(-1, 13)
    back = parse_saml(format_saml(layers)).layers
    assert back.tolist() == layers.tolist()
    tokens = layers_to_tokens(layers, 16)
    assert tokens_to_layers(tokens).tolist() == layers.tolist()
    assert (tokens[len(layers):] == 0).all()


@pytest.mark.parametrize("text, problem", [
    ("<svg/>", "not a Symbol Art file"),
    ("<sa><layer", "not valid XML"),
    ("<sa><layer type='x' color='#000000' /></sa>", "type='x' is not a number"),
    ("<sa><layer type='1' color='red' ltx='0' lty='0' lbx='0' lby='0' rtx='0' rty='0' rbx='0' rby='0'/></sa>",
     "is not #rrggbb"),
    ("<sa><layer type='1' color='#000000' alpha='2' ltx='0' lty='0' lbx='0' lby='0' rtx='0' rty='0' rbx='0' "
     "rby='0'/></sa>", "alpha=2.0 outside 0..1"),
    ("<sa><layer type='1' color='#000000' /></sa>", "missing attribute 'ltx'"),
])
def test_bad_files_name_the_problem(text, problem):
    with pytest.raises(BadInput, match=problem):
        parse_saml(text, "x.saml")


def test_renderer_draws_front_layer_over_back_and_respects_alpha():
    codec = get_codec("saml:8")
    tokens = torch.from_numpy(codec.prepare(parse_saml(SAML))[None].astype(np.int64))
    img = SamlRenderer()(tokens)
    assert img.shape == (1, 4, 96, 192)
    assert _pixel(img, 0.5, -5.5) == [1, 0, 0, 1]  # the red square in front
    assert _pixel(img, 20.5, -20.5) == [0, 0, 1, 1]  # the blue disc behind it
    assert _pixel(img, -29.5, -29.5)[3] == 0  # outside the disc, inside its quad
    assert _pixel(img, 60.5, 1.5) == [1, 1, 1, pytest.approx(4 / 7, abs=1e-3)]  # the half-transparent bar
    assert _pixel(img, 60.5, 20.5)[3] == 0  # bare canvas


def test_renderer_is_differentiable_in_corners_colours_and_opacity():
    layers = torch.tensor([[[244, 200, 100, 50, 7, 118, 118, 118, 138, 138, 118, 138, 138]]], dtype=torch.float32)
    layers.requires_grad_(True)
    out = SamlRenderer(softness=0.05).premultiplied(layers)
    out[:, :3].sum().backward()
    grad = layers.grad[0, 0]
    assert grad[0] == 0  # which symbol is drawn is a choice, not a gradient
    assert (grad[1:4] != 0).all() and grad[4] != 0
    assert (grad[5:] != 0).sum() >= 6  # moving corners changes the area covered


def test_unknown_symbols_use_the_fallback_and_symbol_pictures_replace_it(tmp_path):
    row = np.array([[5, 255, 255, 255, 7, -20, -20, -20, 20, 20, -20, 20, 20]])
    tokens = torch.from_numpy(layers_to_tokens(row, 1)[None])
    outline = SamlRenderer()(tokens)
    assert _pixel(outline, 0.5, 0.5)[3] == 0 and _pixel(outline, -19.5, 0.5)[3] == 1  # an outlined box
    pic = np.zeros((32, 32, 4), np.uint8)
    pic[:, :16] = 255  # left half opaque white
    Image.fromarray(pic, "RGBA").save(tmp_path / "5.png")
    own = SamlRenderer(symbol_dir=str(tmp_path))(tokens)
    assert _pixel(own, -5.5, 0.5)[3] == 1 and _pixel(own, 5.5, 0.5)[3] == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtforgeError, match="no <id>.png pictures found"):
        SamlRenderer(symbol_dir=str(tmp_path / "empty"))
    with pytest.raises(ArtforgeError, match="no such folder"):
        SamlRenderer(symbol_dir=str(tmp_path / "nothing"))


def test_fit_beats_its_quadtree_start_and_keeps_the_budget(emoji):
    from artforge_saml.fit import fit_picture

    torch.set_num_threads(1)
    res = fit_picture(emoji[3], layers=12, steps=40)
    assert res.layers <= 12 and (res.tokens[res.layers:] == 0).all()
    assert res.mse_fit < res.mse_baseline
    assert res.psnr_fit > res.psnr_baseline
    codec = get_codec("saml:12")
    assert codec.check_tokens(res.tokens[None]).shape == (1, 12, 13)


def test_fit_of_a_transparent_picture_draws_nothing():
    from artforge_saml.fit import fit_picture

    res = fit_picture(np.zeros((16, 16, 4), np.uint8), layers=4, steps=5)
    assert res.layers == 0 and (res.tokens == 0).all() and res.mse_fit == 0


def test_cli_convert_render_encode_decode_and_cache(runner, emoji, tmp_path):
    Image.fromarray(emoji[5], "RGBA").save(tmp_path / "e.png")
    r = invoke(runner, "convert", "-c", "saml:10,steps=8", tmp_path / "e.png", "-o", tmp_path / "e.saml",
               "--png", tmp_path / "e_fit.png")
    assert "e.png: " in r.output and "layers, PSNR" in r.output and "quadtree start" in r.output
    art = parse_saml((tmp_path / "e.saml").read_bytes())
    assert 1 <= len(art.layers) <= 10
    invoke(runner, "render", tmp_path / "e.saml", "-o", tmp_path / "r.png")
    rendered = np.asarray(Image.open(tmp_path / "r.png"))
    assert rendered.shape == (96, 192, 4)
    assert (rendered == np.asarray(Image.open(tmp_path / "e_fit.png"))).all()
    invoke(runner, "encode", "-c", "saml:10", tmp_path / "e.saml", "-o", tmp_path / "t.npz")
    invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "d.png")
    assert (np.asarray(Image.open(tmp_path / "d.png")) == rendered).all()

    folder = tmp_path / "arts"
    folder.mkdir()
    (folder / "a.saml").write_text(SAML)
    (folder / "b.saml").write_bytes((tmp_path / "e.saml").read_bytes())
    (folder / "broken.saml").write_text("<sa><layer")
    r = invoke(runner, "data", "build", folder, "-c", "saml:16", "-o", tmp_path / "c.h5")
    assert "2 items" in r.output and "skipped 1" in r.output
    r = invoke(runner, "encode", "-c", "saml:2", folder / "a.saml", "-o", tmp_path / "x.npz", ok=False)
    assert "3 visible layers, more than codec saml:2 holds" in r.output
    assert "no usable .saml files (1 skipped)" in r.output
    r = invoke(runner, "encode", "-c", "saml", tmp_path / "e.png", "-o", tmp_path / "x.npz", ok=False)
    assert "e.png: a picture, not a .saml file" in r.output


@pytest.mark.parametrize("spec, problem", [
    ("saml:0", "1 to 225 layers"),
    ("saml:300", "1 to 225 layers"),
    ("saml:8,colour=1", "unknown option"),
    ("saml,symbols=/no/such/dir", "not a folder"),
])
def test_bad_specs_are_one_line_errors(runner, tmp_path, spec, problem):
    (tmp_path / "a.saml").write_text(SAML)
    r = invoke(runner, "encode", "-c", spec, tmp_path / "a.saml", "-o", tmp_path / "t.npz", ok=False)
    assert problem in r.output


def test_spec_round_trips_through_its_config():
    from artforge.codecs import codec_from_config

    c = get_codec("saml:64,steps=50")
    assert c.spec == "saml:64,steps=50" and c.token_shape == (64, 13) and c.vocab_size == 2048
    assert codec_from_config(c.config()).spec == c.spec
    assert get_codec("saml").spec == "saml"


def test_paths_with_commas_are_escaped_in_specs_and_round_trip(runner, tmp_path):
    """symbols=DIR and net=RUN take the ascii codec's escapes (\\, comma, \\\\ backslash, \\s space), so a
    path with a comma can be named, and the canonical spec escapes it so that it names the same path."""
    import json

    from artforge.codecs import codec_from_config

    folder = tmp_path / "art,2024 x"
    folder.mkdir()
    pic = np.zeros((8, 8, 4), np.uint8)
    pic[..., 3] = 255
    Image.fromarray(pic, "RGBA").save(folder / "243.png")
    ckpt = tmp_path / "run,1.pt"
    ckpt.write_bytes(b"")

    def esc(path):
        return str(path).replace("\\", "\\\\").replace(",", "\\,")

    written = esc(folder)
    c = get_codec(f"saml:8,symbols={written},steps=5,net={esc(ckpt)}")
    assert (c.layers, c.steps, c.symbols, c.net) == (8, 5, str(folder), str(ckpt))
    assert "art\\,2024\\sx" in c.spec and "run\\,1.pt" in c.spec, c.spec
    for again in (get_codec(c.spec), codec_from_config(json.loads(json.dumps(c.config())))):
        assert (again.spec, again.symbols, again.net) == (c.spec, c.symbols, c.net)
    with pytest.raises(ArtforgeError, match="unknown option '2024 x'"):  # a bare comma still splits
        get_codec(f"saml:8,symbols={folder}")
    with pytest.raises(ArtforgeError, match=r"unknown escape '\\q'"):
        get_codec("saml:8,symbols=a\\q")
    # through the CLI: the token file records the escaped spec, and decode finds the folder again
    (tmp_path / "a.saml").write_text(SAML)
    invoke(runner, "encode", "-c", f"saml:8,symbols={written}", tmp_path / "a.saml", "-o", tmp_path / "t.npz")
    invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "t.png")
    assert Image.open(tmp_path / "t.png").size == (192, 96)
