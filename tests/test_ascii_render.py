"""Glyph atlas (no clipped ink, true aspect), the differentiable renderer, SSIM and image -> ASCII."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from artforge.codecs import get_codec
from artforge.renderers import get_renderer, one_hot
from artforge_ascii.atlas import DEFAULT_FONT, build_atlas
from artforge_ascii.convert import brightness_ramp, image_to_tokens
from artforge_ascii.layout import PRINTABLE
from artforge_ascii.renderer import GlyphRenderer
from artforge_ascii.ssim import ssim


def full_ink(font, ch: str, px: int) -> float:
    """All the ink of one glyph, drawn on a canvas far larger than any cell."""
    size = 8 * px
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).text((2 * px, 5 * px), ch, fill=255, font=font, anchor="ls")
    return float(np.asarray(im, np.float64).sum() / 255.0)


@pytest.mark.parametrize("px", [8, 11, 12, 14])
def test_every_glyph_keeps_all_its_ink_inside_its_cell(px):
    atlas = build_atlas(PRINTABLE, None, px)
    font = ImageFont.truetype(str(DEFAULT_FONT), px)
    inside = atlas.ink.astype(np.float64).sum((1, 2))
    whole = np.array([full_ink(font, ch, px) for ch in PRINTABLE])
    np.testing.assert_allclose(inside, whole, atol=1e-6)
    assert inside[0] == 0 and (inside[1:] > 0).all()  # space is blank, every other glyph has ink
    # the test has teeth: a cell of just advance x line height (the seed's crop) loses ink at 12 px
    if px == 12:
        ascent, descent = font.getmetrics()
        naive = np.zeros_like(whole)
        for i, ch in enumerate(PRINTABLE):
            im = Image.new("L", (round(atlas.advance), ascent + descent), 0)
            ImageDraw.Draw(im).text((0, ascent), ch, fill=255, font=font, anchor="ls")
            naive[i] = np.asarray(im, np.float64).sum() / 255.0
        assert (naive < whole - 0.05).sum() >= 5


def test_cells_have_the_fonts_aspect():
    big = ImageFont.truetype(str(DEFAULT_FONT), 1000)
    ascent, descent = big.getmetrics()
    true_aspect = (ascent + descent) / big.getlength("M")  # about 1.94 for DejaVu Sans Mono
    for px in (8, 11, 16, 24):
        h, w = build_atlas(PRINTABLE, None, px).cell
        assert h > w and abs(h / w - true_aspect) / true_aspect < 0.12, (px, h, w)


def test_renderer_hard_equals_soft_one_hot_and_the_codec_picture():
    codec = get_codec("ascii:9x4")
    render = get_renderer(codec)
    assert isinstance(render, GlyphRenderer)
    tokens = torch.randint(0, 95, (3, 4, 9), generator=torch.Generator().manual_seed(0))
    hard = render(tokens)
    h, w = codec.atlas.cell
    assert hard.shape == (3, 1, 4 * h, 9 * w)
    assert torch.equal(hard, render(one_hot(tokens, 95)))
    pic = codec.decode(tokens.numpy())
    np.testing.assert_array_equal(np.round(hard[:, 0].numpy() * 255).astype(np.uint8), pic[..., 0])
    # a soft cell is the probability-weighted mix of glyphs
    p = torch.zeros(1, 95, 1, 1)
    p[0, 33, 0, 0], p[0, 65, 0, 0] = 0.25, 0.75  # 'A' and 'a'
    mix = render(p)[0, 0]
    torch.testing.assert_close(mix, 0.25 * render.glyphs[33] + 0.75 * render.glyphs[65])
    with pytest.raises(ValueError, match="probabilities"):
        render(torch.rand(1, 7, 2, 2))


def test_renderer_is_differentiable():
    atlas = build_atlas(" .:-=+*#%@", None, 5)
    render = GlyphRenderer(atlas).double()
    logits = torch.randn(2, 10, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: render(x.softmax(1)), (logits,), eps=1e-6, atol=1e-5, fast_mode=True)
    # gradients reach every character of every cell
    logits.grad = None
    render(logits.softmax(1)).square().sum().backward()
    assert (logits.grad.abs().sum((0, 2, 3)) > 0).all()


def test_ssim_against_a_direct_computation():
    rng = np.random.default_rng(0)
    a = rng.random((13, 15))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert abs(float(ssim(a, a)[0]) - 1.0) < 1e-12
    # one window position at a time, straight from the definition
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for i in range(13 - 10):
        for j in range(15 - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (win * pa).sum(), (win * pb).sum()
            va, vb = (win * pa * pa).sum() - ma**2, (win * pb * pb).sum() - mb**2
            cov = (win * pa * pb).sum() - ma * mb
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert abs(float(ssim(a, b)[0]) - np.mean(vals)) < 1e-10
    assert float(ssim(a, b)[0]) < 1.0 and torch.allclose(ssim(a, b), ssim(b, a))
    fast = ssim(torch.from_numpy(a).float(), torch.from_numpy(b).float())  # float32 path
    assert fast.dtype == torch.float32 and abs(float(fast[0]) - np.mean(vals)) < 1e-4


def _test_picture() -> np.ndarray:
    """A 64x64 picture with structure: a ring, a diagonal, a bar and a filled box."""
    im = Image.new("RGBA", (64, 64), (255, 255, 255, 255))
    d = ImageDraw.Draw(im)
    d.ellipse((4, 4, 36, 36), outline=(0, 0, 0, 255), width=3)
    d.line((40, 60, 62, 6), fill=(0, 0, 0, 255), width=3)
    d.rectangle((8, 44, 30, 47), fill=(30, 30, 30, 255))
    d.rectangle((44, 44, 56, 58), fill=(90, 90, 90, 255))
    return np.asarray(im)[None]


def _score(tokens: np.ndarray, codec, source: np.ndarray) -> float:
    from artforge_ascii.convert import paper_brightness

    pic = GlyphRenderer(codec.atlas)(torch.from_numpy(tokens.astype(np.int64)))
    small = torch.nn.functional.interpolate(pic, size=source.shape[1:3], mode="area")[:, 0]
    return float(ssim(small, paper_brightness(source, *source.shape[1:3]))[0])


def test_conversion_beats_a_brightness_ramp():
    codec = get_codec("ascii:32x16")
    img = _test_picture()
    ours = codec.convert(img)
    assert ours.shape == (1, 16, 32) and ours.dtype == np.uint8
    ramp = brightness_ramp(img, codec.atlas, 32, 16)
    assert _score(ours, codec, img) > _score(ramp, codec, img) + 0.05
    # structure: edges get glyphs whose ink sits at one side of the cell, which no ramp picks on its own
    text = codec.to_text(ours[0])
    assert "_" in text and '"' in text


def test_conversion_options_and_fit_grid():
    codec = get_codec("ascii")
    img = _test_picture()
    tokens = codec.convert(img)
    h, w = codec.atlas.cell
    assert tokens.shape == (1, round(80 * w / h), 80)
    a = image_to_tokens(img, codec.atlas, 32, 16, edges=0.0)
    b = image_to_tokens(img, codec.atlas, 32, 16, edges=1.0)
    assert a.shape == b.shape and (a != b).any()  # edge emphasis changes choices
    from artforge.errors import ArtforgeError

    with pytest.raises(ArtforgeError, match="--edges"):
        codec.convert(img, edges=2.0)
    with pytest.raises(ArtforgeError, match="--dither"):
        codec.convert(img, dither="bayer")


def test_downsampled_glyphs_are_cached_per_atlas_and_footprint():
    """Converting many pictures resizes the glyphs once per (atlas, footprint), not per picture;
    the cached arrays are the uncached ones, read-only, and each atlas and font size has its own."""
    from artforge_ascii import convert

    small, big = build_atlas(PRINTABLE, None, 8), build_atlas(PRINTABLE, None, 14)
    for atlas in (small, big):
        for kh, kw in ((2, 1), (7, 4), atlas.cell):
            got = convert._glyphs_at(atlas, kh, kw)
            assert got is convert._glyphs_at(atlas, kh, kw) and not got.flags.writeable
            assert got.shape == (len(atlas.chars), kh, kw) and got.dtype == np.float32
            assert np.array_equal(got, convert._glyphs_at.__wrapped__(atlas, kh, kw))
    assert not np.array_equal(convert._glyphs_at(small, 4, 3), convert._glyphs_at(big, 4, 3))
    img = _test_picture()
    convert._glyphs_at.cache_clear()
    fresh = image_to_tokens(img, small, 16, 8, edges=0.5)
    assert convert._glyphs_at.cache_info().misses == 1
    assert np.array_equal(image_to_tokens(img, small, 16, 8, edges=0.5), fresh)
    assert convert._glyphs_at.cache_info().hits >= 1


def test_grid_ssim_skips_blank_margins_exactly():
    from artforge_ascii.ssim import grid_ssim

    codec = get_codec("ascii:20x12")
    render = get_renderer(codec)
    g = torch.Generator().manual_seed(3)
    target = torch.zeros(12, 20, dtype=torch.long)
    pred = torch.zeros(12, 20, dtype=torch.long)
    target[4:7, 5:12] = torch.randint(1, 95, (3, 7), generator=g)
    pred[5:8, 7:14] = torch.randint(1, 95, (3, 7), generator=g)
    whole, piece = grid_ssim(render, target, pred, codec.space)
    full = ssim(render(target[None])[:, 0], render(pred[None])[:, 0])
    assert abs(whole - float(full[0])) < 1e-5
    h, w = codec.atlas.cell
    crop = (slice(3 * h, 8 * h), slice(4 * w, 13 * w))
    direct = ssim(render(target[None])[0, 0][crop], render(pred[None])[0, 0][crop])
    assert abs(piece - float(direct[0])) < 1e-5 and piece < whole
    assert grid_ssim(render, target, target, codec.space) == (1.0, 1.0)
