"""Property tests of the codec laws every built-in codec family obeys (docs/hooks.md, the Codec
contract, and each plugin's page under docs/plugins/).

For each picture codec (hsv, binary, palette), on random small RGBA batches (random sizes, 1-pixel
wide and tall ones, uniform pictures, alpha random, fully transparent or opaque):

- ``encode`` gives ``(N, H, W)`` tokens of the codec's ``token_dtype`` and ``token_ndim``, every
  value in ``[0, vocab_size)``, the same twice, and the same as encoding item by item;
- ``decode`` of them is ``(N, H, W, 4)`` uint8 pictures, and encoding those gives the tokens back
  (encode -> decode -> encode is a fixed point);
- every valid token grid decodes, and for these codecs encodes back to itself (hsv: decode ->
  encode -> decode is exact; palette and binary: decode -> encode is the identity); the registered
  renderer draws exactly what ``decode`` draws, hard and one-hot soft;
- a token file (``save_tokens`` / ``load_token_codec``, what ``artforge encode`` / ``decode`` use)
  keeps tokens, dtype and codec config; ``config()`` rebuilds a codec that encodes the same.

ascii is a text codec: its laws are on text (the layout fixed point, documented in
docs/plugins/ascii.md) and its ``convert`` (pictures -> tokens), which is lossy, so only the
contract's shape/range/determinism and the documented "a blank picture converts to a blank canvas"
are checked. saml's input is layer rows: encode is the identity on pieces and a piece written as
``.saml`` reads back to the same tokens; its ``convert`` (fitting) is slow, so only a few small
pictures are fitted, with few steps, checking the documented "never worse than the rounded mosaic".
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from artforge.codecs import (
    check_encoded,
    check_item_shape,
    codec_from_config,
    decode_checked,
    get_codec,
)
from artforge.errors import ArtforgeError
from artforge.renderers import get_renderer, one_hot, render_tokens
from artforge.tokenfile import load_token_codec, save_tokens

from conftest import invoke

LAWS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])

# a translucent palette: alpha levels 1, 64, 200 and 255 compete apart (quantize.snap_alpha)
TRANSLUCENT_JSON = json.dumps(["#000000", "#ffffff", "#ff000040", "#00ff00c8", "#0000ff", "#80808001"])

PICTURE_SPECS = ["hsv544", "hsv433", "hsv111", "hsv844", "hsv181", "hsv118", "binary", "binary:1", "binary:255",
                 "palette:bw", "palette:cga", "palette:gameboy", "palette:nes", "palette:pico8",
                 "palette:FILE", "palette:auto/1", "palette:auto/5", "palette:auto"]


@pytest.fixture(scope="module")
def palette_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pal") / "laws.json"
    path.write_text(TRANSLUCENT_JSON)
    return path


def make_codec(spec: str, palette_file, fit_on: np.ndarray | None = None):
    """The codec a spec names (``palette:FILE``: a translucent palette file); auto palettes are fitted
    on ``fit_on``, the data they are about to encode, as ``artforge encode`` does, plus one grey pixel
    (data with nothing visible is an error of its own, tested in test_palette.py)."""
    codec = get_codec(spec.replace("FILE", str(palette_file)))
    if codec.needs_fit:
        codec.fit([fit_on, np.array([[[90, 90, 90, 255]]], np.uint8)])
    return codec


# -- pictures -----------------------------------------------------------------------------------
SPECIAL = st.sampled_from([0, 1, 127, 128, 254, 255])
CHANNEL = st.one_of(st.integers(0, 255), SPECIAL)


@st.composite
def pictures(draw, max_side: int = 6, max_n: int = 3) -> np.ndarray:
    """(N, H, W, 4) uint8 RGBA: random, uniform, or one-colour-plus-noise, with random, fully
    transparent or opaque alpha; sides from 1 (1-pixel-wide and 1-pixel-tall pictures)."""
    n, h, w = draw(st.integers(1, max_n)), draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kind = draw(st.sampled_from(["random", "uniform", "few"]))
    if kind == "uniform":
        px = np.array(draw(st.tuples(CHANNEL, CHANNEL, CHANNEL, CHANNEL)), np.uint8)
        img = np.broadcast_to(px, (n, h, w, 4)).copy()
    elif kind == "few":  # a handful of colours: what palettes and pixel art look like
        cols = draw(arrays(np.uint8, (draw(st.integers(1, 4)), 4), elements=CHANNEL))
        pick = draw(arrays(np.int64, (n, h, w), elements=st.integers(0, len(cols) - 1)))
        img = cols[pick]
    else:
        img = draw(arrays(np.uint8, (n, h, w, 4), elements=CHANNEL))
    alpha = draw(st.sampled_from(["keep", "transparent", "opaque"]))
    if alpha == "transparent":
        img[..., 3] = 0
    elif alpha == "opaque":
        img[..., 3] = 255
    return np.ascontiguousarray(img)


def check_tokens_law(codec, tokens: np.ndarray, shape: tuple[int, ...]) -> None:
    """The declared dtype, shape and rank, values in the vocabulary (and artforge's own check)."""
    assert tokens.dtype == codec.token_dtype, (tokens.dtype, codec.token_dtype)
    assert tokens.shape == shape
    assert tokens.min() >= 0 and tokens.max() < codec.vocab_size
    check_encoded(codec, tokens, shape[0])
    check_item_shape(codec, tokens, "laws")
    if codec.token_ndim is not None:
        assert tokens.ndim - 1 == codec.token_ndim


def check_renderer_agrees(codec, tokens: np.ndarray, pictures: np.ndarray) -> None:
    """The registered renderer draws what decode draws: hard tokens, and one-hot probabilities
    equal the hard render (docs/hooks.md, register_renderers)."""
    renderer = get_renderer(codec)
    drawn = render_tokens(codec, tokens, renderer)  # grey renderers (ascii) come back as RGB
    np.testing.assert_array_equal(drawn, pictures[..., : drawn.shape[-1]])
    if drawn.shape[-1] == 3:
        assert (pictures[..., 3] == 255).all()
    with torch.no_grad():
        t = torch.from_numpy(tokens.astype(np.int64))
        hard = renderer(t)
        soft = renderer(one_hot(t, codec.vocab_size))
    torch.testing.assert_close(soft, hard, rtol=0, atol=1e-6)


@LAWS
@given(spec=st.sampled_from(PICTURE_SPECS), images=pictures())
def test_picture_codec_laws(spec, images, palette_file):
    codec = make_codec(spec, palette_file, images)
    n, h, w = images.shape[:3]
    tokens = codec.encode(images)
    check_tokens_law(codec, tokens, (n, h, w))
    # determinism, and batches are encoded item by item (no item changes another's tokens)
    np.testing.assert_array_equal(codec.encode(images.copy()), tokens)
    np.testing.assert_array_equal(np.stack([codec.encode(images[i : i + 1])[0] for i in range(n)]), tokens)
    # one token per pixel: a mirrored (non-contiguous) view encodes to the mirrored tokens
    np.testing.assert_array_equal(codec.encode(images[:, ::-1, ::-1]), tokens[:, ::-1, ::-1])
    # decode: (N, H, W, 4) uint8, and encode -> decode -> encode is a fixed point
    pics = decode_checked(codec, tokens)
    assert pics.shape == (n, h, w, 4) and pics.dtype == np.uint8
    np.testing.assert_array_equal(codec.encode(pics), tokens)
    np.testing.assert_array_equal(decode_checked(codec, codec.encode(pics)), pics)
    # config() rebuilds an equal codec, through JSON as caches and token files store it
    again = codec_from_config(json.loads(json.dumps(codec.config())))
    assert again.config() == codec.config() and again.spec == codec.spec
    assert again.vocab_size == codec.vocab_size and not again.needs_fit
    np.testing.assert_array_equal(again.encode(images), tokens)
    if not spec.startswith("palette:auto"):  # the canonical spec names the same codec (auto: unfitted)
        assert get_codec(codec.spec).config() == codec.config()


@LAWS
@given(spec=st.sampled_from(PICTURE_SPECS), images=pictures(max_n=2), seed=st.integers(0, 2**32 - 1))
def test_any_valid_tokens_decode_render_and_round_trip(spec, images, seed, palette_file):
    """Random valid token grids (not only encoded ones) decode; the renderer agrees with decode;
    decoding is a picture the codec encodes back to the same tokens (hsv: to the same picture)."""
    codec = make_codec(spec, palette_file, images)
    tokens = np.random.default_rng(seed).integers(0, codec.vocab_size, images.shape[:3]).astype(codec.token_dtype)
    if seed % 4 == 0:  # the vocabulary's ends
        tokens[..., 0] = 0
        tokens[..., -1] = codec.vocab_size - 1
    pics = decode_checked(codec, tokens)
    assert pics.shape == (*tokens.shape, 4) and pics.dtype == np.uint8
    again = codec.encode(pics)
    if codec.name == "hsv":  # non-canonical tokens settle on their canonical one: the same colour
        np.testing.assert_array_equal(codec.decode(again), pics)
        np.testing.assert_array_equal(codec.encode(codec.decode(again)), again)
    else:
        np.testing.assert_array_equal(again, tokens)
    check_renderer_agrees(codec, tokens, pics)


@LAWS
@given(spec=st.sampled_from(PICTURE_SPECS), images=pictures(max_n=2))
def test_token_files_keep_tokens_dtype_and_codec(spec, images, palette_file, tmp_path_factory):
    codec = make_codec(spec, palette_file, images)
    tokens = codec.encode(images)
    path = save_tokens(tmp_path_factory.mktemp("tok") / "t", tokens, [f"p{i}" for i in range(len(tokens))],
                       codec.config())
    tf, back = load_token_codec(path)
    assert tf.tokens.dtype == tokens.dtype
    np.testing.assert_array_equal(tf.tokens, tokens)
    assert tf.names == [f"p{i}" for i in range(len(tokens))]
    assert back.config() == codec.config() and back.spec == codec.spec
    np.testing.assert_array_equal(back.decode(tf.tokens), codec.decode(tokens))


@pytest.mark.parametrize("spec", ["hsv433", "binary:200", "palette:pico8", "palette:FILE", "palette:auto/3"])
def test_encode_and_decode_commands_keep_tokens_dtype_and_codec(runner, tmp_path, spec, palette_file):
    """`artforge encode` writes what the codec encodes (its dtype and config), `artforge decode` reads
    it back and draws what the codec decodes."""
    from artforge.imageio import load_image, save_picture

    rng = np.random.default_rng(7)
    src = tmp_path / "in"
    src.mkdir()
    images = rng.integers(0, 256, (3, 5, 4, 4), dtype=np.uint8)
    images[0, ..., 3] = 0  # a fully transparent picture
    images[1] = images[1, :1, :1]  # a uniform one
    for i, img in enumerate(images):
        save_picture(img, src / f"{i}.png")
    loaded = np.stack([load_image(src / f"{i}.png") for i in range(3)])
    spec = spec.replace("FILE", str(palette_file))
    invoke(runner, "encode", "-c", spec, src, "-o", tmp_path / "t.npz")
    tf, codec = load_token_codec(tmp_path / "t.npz")
    want = get_codec(spec)
    if want.needs_fit:
        want.fit([loaded])
    assert codec.config() == want.config() and codec.spec == want.spec
    assert tf.tokens.dtype == want.token_dtype
    np.testing.assert_array_equal(tf.tokens, want.encode(loaded))
    assert tf.names == ["0.png", "1.png", "2.png"]
    invoke(runner, "decode", tmp_path / "t.npz", "-o", f"{tmp_path / 'out'}/")
    for i in range(3):
        np.testing.assert_array_equal(load_image(tmp_path / "out" / f"{i}.png"), want.decode(tf.tokens[i]))


@pytest.mark.parametrize("spec", ["palette:auto/2", "palette:auto/4", "palette:auto"])
@LAWS
@given(images=pictures(max_side=5))
def test_auto_palette_fit_is_deterministic(spec, images):
    """Fitting the same data twice learns the same palette (k-means is seeded); ``fit`` learns afresh
    each time, so fitting other data in between changes nothing."""
    a, b = get_codec(spec), get_codec(spec)
    if not (images[..., 3] > 0).any():
        return  # nothing visible to learn from: an error, tested in test_palette.py
    a.fit([images])
    b.fit([images[::-1, ::-1]])  # other data first
    b.fit([images])
    assert a.config() == b.config()
    c = get_codec(spec)  # the same pictures as a stream of single pictures, in another order
    c.fit(iter([img for img in images[::-1]]))
    assert c.config() == a.config()


# -- ascii: text -----------------------------------------------------------------------------------
PRINTABLE = "".join(chr(c) for c in range(32, 127))
ASCII_SPECS = ["ascii:8x5,crop", "ascii:1x1,crop", "ascii:3x7,crop,replace=?", "ascii:6x4,crop,charset=ramp,replace=#",
               "ascii:5x5,crop,chars=\\s.:oO@,replace=@", "ascii:4x3,crop,px=6"]

texts = st.lists(st.text(alphabet=PRINTABLE + "\t\u00e9", min_size=0, max_size=10), min_size=1, max_size=8).map(
    "\n".join)


@LAWS
@given(spec=st.sampled_from(ASCII_SPECS), batch=st.lists(texts, min_size=1, max_size=3))
def test_ascii_text_laws(spec, batch):
    codec = get_codec(spec)
    if not codec.replace:
        batch = [t.replace("\u00e9", " ") for t in batch]
    if codec.chars != PRINTABLE:
        batch = ["".join(c if c in codec.allowed or c in "\n\t" else codec.replace for c in t) for t in batch]
    try:
        tokens = codec.encode(batch)
    except ArtforgeError as exc:  # refusals the docs and test_ascii_codec.py promise
        assert re.match("blank text: nothing but line breaks", str(exc))  # a crop with no ink left is blank
        reject()
    check_tokens_law(codec, tokens, (len(batch), *codec.token_shape))
    np.testing.assert_array_equal(codec.encode(list(batch)), tokens)
    pics = decode_checked(codec, tokens)
    h, w = codec.atlas.cell
    assert pics.shape == (len(batch), codec.rows * h, codec.cols * w, 4) and pics.dtype == np.uint8
    # the layout fixed point: the grid's text lays out to the same grid
    np.testing.assert_array_equal(codec.encode([codec.to_text(t) for t in tokens]), tokens)
    again = codec_from_config(json.loads(json.dumps(codec.config())))
    assert again.config() == codec.config()
    np.testing.assert_array_equal(again.encode(batch), tokens)


@settings(LAWS, max_examples=20)
@given(spec=st.sampled_from(ASCII_SPECS), n=st.integers(1, 2), seed=st.integers(0, 2**32 - 1))
def test_ascii_any_valid_tokens_decode_and_render(spec, n, seed, tmp_path_factory):
    codec = get_codec(spec)
    tokens = np.random.default_rng(seed).integers(0, codec.vocab_size, (n, *codec.token_shape)).astype(
        codec.token_dtype)
    pics = decode_checked(codec, tokens)
    check_renderer_agrees(codec, tokens, pics)
    path = save_tokens(tmp_path_factory.mktemp("tok") / "t.npz", tokens, ["a"] * n, codec.config())
    tf, back = load_token_codec(path)
    assert tf.tokens.dtype == tokens.dtype and back.config() == codec.config()
    np.testing.assert_array_equal(tf.tokens, tokens)


@settings(max_examples=25, deadline=None)
@given(spec=st.sampled_from(["ascii:4x3", "ascii:1x1", "ascii:5x2,charset=ramp", "ascii"]),
       images=pictures(max_side=8, max_n=2))
def test_ascii_convert_laws(spec, images):
    """convert (pictures -> tokens) is lossy; it keeps the contract, is deterministic, and a blank
    picture (white, or fully transparent: composited over white) converts to a blank canvas."""
    codec = get_codec(spec)
    tokens = codec.convert(images)
    n = len(images)
    shape = codec.token_shape or tokens.shape[1:]
    check_tokens_law(codec, tokens, (n, *shape))
    np.testing.assert_array_equal(codec.convert(images.copy()), tokens)
    blank = (images[..., 3] == 0) | (images[..., :3] == 255).all(-1)
    for i in range(n):
        if blank[i].all():
            assert (tokens[i] == codec.space).all(), codec.to_text(tokens[i])


charsets = st.lists(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), unique=True,
                    min_size=0, max_size=12).map(lambda cs: "".join(dict.fromkeys([" ", *cs])))


@LAWS
@given(chars=charsets, data=st.data())
def test_ascii_specs_name_their_codec(chars, data):
    """A codec's canonical spec (escapes and all) builds the same codec, and so does its config."""
    from artforge_ascii.codec import AsciiCodec

    try:
        chars_ok = AsciiCodec(chars=chars).chars
    except ArtforgeError as exc:
        assert "control characters" in str(exc)
        reject()
    grid = data.draw(st.one_of(st.none(), st.tuples(st.integers(1, 512), st.integers(1, 512))))
    replace = data.draw(st.one_of(st.none(), st.sampled_from(chars_ok)))
    crop = data.draw(st.booleans())
    codec = AsciiCodec(*(grid or (None, None)), chars=chars_ok, crop=crop, replace=replace)
    assert get_codec(codec.spec).config() == codec.config()
    assert codec_from_config(json.loads(json.dumps(codec.config()))).spec == codec.spec
    text = "".join(data.draw(st.lists(st.sampled_from(chars_ok + "\n"), min_size=1, max_size=20)))
    if text.strip(" \n") and grid is None:
        np.testing.assert_array_equal(get_codec(codec.spec).encode(text), codec.encode(text))


# -- saml: layer rows --------------------------------------------------------------------------------
layer_rows = st.lists(
    st.tuples(st.integers(0, 2046), *[st.integers(0, 255)] * 3, st.integers(0, 7), *[st.integers(-128, 127)] * 8),
    min_size=0, max_size=6,
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers=st.sampled_from([6, 9, 16]), pieces=st.lists(layer_rows, min_size=1, max_size=2))
def test_saml_laws(layers, pieces, tmp_path_factory):
    from artforge_saml.codec import HEIGHT, WIDTH, layers_to_tokens

    codec = get_codec(f"saml:{layers}")
    batch = codec.stack([layers_to_tokens(np.array(p, np.int64).reshape(-1, 13), layers) for p in pieces])
    tokens = codec.encode(batch)
    check_tokens_law(codec, tokens, (len(pieces), layers, 13))
    np.testing.assert_array_equal(codec.encode(batch.copy()), tokens)
    pics = decode_checked(codec, tokens)
    assert pics.shape == (len(pieces), HEIGHT, WIDTH, 4) and pics.dtype == np.uint8
    folder = tmp_path_factory.mktemp("saml")
    for i, t in enumerate(tokens):  # a piece written as .saml reads back to the same tokens
        codec.write_native(t, folder / f"{i}.saml")
        np.testing.assert_array_equal(codec.encode([codec.load(folder / f"{i}.saml")])[0], t)
    path = save_tokens(folder / "t.npz", tokens, ["a"] * len(tokens), codec.config())
    tf, back = load_token_codec(path)
    assert tf.tokens.dtype == tokens.dtype and back.config() == codec.config()
    np.testing.assert_array_equal(tf.tokens, tokens)


@settings(max_examples=10, deadline=None)
@given(layers=st.sampled_from([1, 4, 225]), seed=st.integers(0, 2**32 - 1))
def test_saml_any_valid_tokens_decode(layers, seed):
    """Any tokens the codec accepts (each column within its range, empty rows anywhere) decode, and
    the renderer draws the same."""
    from artforge_saml.codec import FIELD_MAX

    codec = get_codec(f"saml:{layers}")
    rng = np.random.default_rng(seed)
    rows = min(layers, 8)
    tokens = np.zeros((1, layers, 13), np.int64)
    tokens[0, :rows] = rng.integers(0, FIELD_MAX + 1, (rows, 13))
    tokens = tokens.astype(codec.token_dtype)
    pics = decode_checked(codec, tokens)
    assert pics.shape == (1, 96, 192, 4)
    np.testing.assert_array_equal(render_tokens(codec, tokens), pics)


@settings(max_examples=6, deadline=None)
@given(images=pictures(max_side=6, max_n=1), layers=st.sampled_from([1, 3, 8]), steps=st.sampled_from([0, 2]))
def test_saml_convert_laws(images, layers, steps):
    """The fit (lossy): pieces of the contract's shape with empty rows (all zero) last, deterministic,
    never worse than the rounded quadtree mosaic it starts from."""
    codec = get_codec(f"saml:{layers},steps={steps}")
    tokens = codec.convert(images)
    check_tokens_law(codec, tokens, (1, layers, 13))
    used = tokens[0, :, 0] > 0
    assert not (used[1:] & ~used[:-1]).any(), "empty rows come last"
    assert (tokens[0][~used] == 0).all(), "empty rows are all zero"
    for fit in codec._fits:
        assert fit.psnr_fit >= fit.psnr_baseline
    np.testing.assert_array_equal(codec.convert(images.copy()), tokens)


@pytest.mark.parametrize("spec", ["ascii:7x3,crop,replace=?", "ascii", "saml:5"])
def test_encode_and_decode_commands_for_text_and_saml(runner, tmp_path, spec):
    """The same for the codecs whose inputs are files of their own (.txt, .saml)."""
    from artforge.imageio import load_image
    from artforge_saml.codec import layers_to_tokens

    codec = get_codec(spec)
    src = tmp_path / "in"
    src.mkdir()
    if codec.name == "ascii":
        texts = ["  /\\_/\\\n ( o.o )\n  > ^ <", "\t\u00e9x\n\n", "    \n   "]
        if spec == "ascii":
            texts = ["\tx\n ~\n\n"]  # the grid fits each text: one size in a file
        for i, t in enumerate(texts):
            (src / f"{i}.txt").write_text(t)
        want = codec.encode([codec.prepare(codec.load(src / f"{i}.txt")) for i in range(len(texts))])
        suffix = ".txt"
    else:
        rng = np.random.default_rng(3)
        want = []
        for i, n in enumerate([0, 2, 5]):
            rows = np.concatenate([rng.integers(0, 2047, (n, 1)), rng.integers(0, 256, (n, 3)),
                                   rng.integers(0, 8, (n, 1)), rng.integers(-128, 128, (n, 8))], 1)
            t = layers_to_tokens(rows, 5)
            codec.write_native(t, src / f"{i}.saml")
            want.append(t)
        want = codec.encode(np.stack(want))
        suffix = ".saml"
    invoke(runner, "encode", "-c", spec, src, "-o", tmp_path / "t.npz")
    tf, back = load_token_codec(tmp_path / "t.npz")
    assert back.config() == codec.config() and tf.tokens.dtype == codec.token_dtype
    np.testing.assert_array_equal(tf.tokens, want)
    assert tf.names == [f"{i}{suffix}" for i in range(len(want))]
    invoke(runner, "decode", tmp_path / "t.npz", "-o", f"{tmp_path / 'out'}/")
    for i in range(len(want)):
        np.testing.assert_array_equal(load_image(tmp_path / "out" / f"{i}.png"), codec.decode(want[i]))


@pytest.mark.parametrize("spec", ["hsv544", "binary", "binary:200", "palette:pico8"])
@pytest.mark.parametrize("bad", ["rgb", "float", "uint16", "flat", "pixels", "row"])
def test_picture_codecs_refuse_what_is_not_rgba_bytes(spec, bad):
    """docs/hooks.md: images travel as (N, H, W, 4) uint8 RGBA, and an input a codec cannot take is an
    ArtforgeError, never a crash or tokens computed from misread values."""
    img = np.full((1, 2, 3, 4), 40, np.uint8)
    img = {"rgb": img[..., :3], "float": img.astype(np.float32) / 255, "uint16": img.astype(np.uint16) * 257,
           "flat": img.reshape(-1), "pixels": img.reshape(-1, 4), "row": img[0, 0]}[bad]  # (P, 4), (W, 4)
    family = spec.partition(":")[0].rstrip("0123456789")
    with pytest.raises(ArtforgeError, match=rf"^{family} codec expects uint8 RGBA images, got \w+ \([\d, ]+\)$"):
        get_codec(spec).encode(img)
