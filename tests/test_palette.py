"""The palette codec: round trips, nearest colours, transparency, dithering, palette files, CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from artforge.codecs import codec_from_config, get_codec
from artforge.errors import ArtforgeError, BadInput
from artforge_palette import quantize
from artforge_palette.codec import PaletteCodec
from artforge_palette.colorspace import lab_to_srgb, srgb_to_lab
from artforge_palette.palettes import read_palette, write_palette

from conftest import invoke

TILES = Path(__file__).resolve().parents[1] / "plugins" / "artforge_palette" / "data" / "tiles32.npz"


pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args, ok: bool = True):
    return invoke(CliRunner(), *args, ok=ok)


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    with np.load(TILES) as z:
        return z["images"][:96]


def codec_with(colors) -> PaletteCodec:
    return PaletteCodec("test", np.asarray(colors, np.uint8))


# -- colour space ----------------------------------------------------------------------------------
def test_lab_reference_values_and_inverse():
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)
    np.testing.assert_allclose(lab[3], [32.30, 79.19, -107.86], atol=0.05)
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3)).astype(np.uint8)
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-6)


def _lab_whole_array(rgb: np.ndarray) -> np.ndarray:
    """The formula in one go, as srgb_to_lab computed it before it worked in blocks."""
    from artforge_palette import colorspace as cs

    rgb = np.asarray(rgb)
    lin = cs._LINEAR_LUT[rgb] if rgb.dtype == np.uint8 else cs._linear(np.clip(rgb, 0, 255) / 255.0)
    xyz = lin @ cs._RGB_TO_XYZ.T / cs._WHITE
    f = np.where(xyz > cs._D**3, np.cbrt(xyz), xyz / (3 * cs._D**2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


@pytest.mark.parametrize("block", [7, 1 << 14])
def test_lab_in_blocks_equals_the_whole_array_exactly(monkeypatch, block):
    from artforge_palette import colorspace as cs

    monkeypatch.setattr(cs, "_BLOCK", block)
    rng = np.random.default_rng(5)
    dark = np.stack(np.meshgrid(*[np.arange(12)] * 3, indexing="ij"), -1).reshape(-1, 3)  # the linear toe
    for x in (rng.integers(0, 256, (3, 41, 300, 3)).astype(np.uint8), dark.astype(np.uint8),
              rng.uniform(-5, 260, (1000, 3)), rng.integers(0, 256, (2 * block + 1, 3)).astype(np.uint8),
              np.array([7, 200, 31], np.uint8), np.zeros((0, 3), np.uint8)):
        got = srgb_to_lab(x)
        assert got.shape == x.shape and got.dtype == np.float64
        assert np.array_equal(got, _lab_whole_array(x))  # bit for bit: nearest-colour ties cannot move


# -- specs, presets, config --------------------------------------------------------------------------
@pytest.mark.parametrize("spec, colours", [("pico8", 16), ("gameboy", 4), ("nes", 54), ("cga", 16), ("bw", 2)])
def test_presets(spec, colours):
    c = get_codec(f"palette:{spec}")
    assert c.vocab_size == colours + 1 and c.token_dtype == np.uint8
    assert tuple(c.palette[0]) == (0, 0, 0, 0) and (c.palette[1:, 3] == 255).all()
    again = codec_from_config(json.loads(json.dumps(c.config())))
    assert np.array_equal(again.palette, c.palette) and again.spec == c.spec


def test_pico8_colours_are_the_real_ones():
    c = get_codec("palette:pico8")
    assert "#ff004d" in c.config()["colors"] and c.config()["colors"][0] == "#000000"


def test_bad_specs():
    for spec in ("palette:auto/0", "palette:auto/70000", "palette:nosuchpreset"):
        with pytest.raises(ArtforgeError):
            get_codec(spec)
    with pytest.raises(BadInput, match="no such palette file"):
        get_codec("palette:missing.gpl")


def test_unfitted_auto_codec_says_so():
    c = get_codec("palette:auto/8")
    assert c.needs_fit
    with pytest.raises(ArtforgeError, match="no palette yet"):
        c.encode(np.zeros((1, 2, 2, 4), np.uint8))


# -- round trips -------------------------------------------------------------------------------------
@st.composite
def palettes_and_grids(draw):
    n = draw(st.integers(1, 40))
    keys = draw(st.lists(st.integers(1, 2**32 - 1), min_size=n, max_size=n, unique=True))
    cols = quantize.unpack(np.array(keys, np.uint32))
    cols[:, 3] = np.maximum(cols[:, 3], 1)  # visible colours only
    cols = cols[np.unique(quantize.pack(cols), return_index=True)[1]]
    h, w, b = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
    grid = np.array(draw(st.lists(st.integers(0, len(cols)), min_size=b * h * w, max_size=b * h * w)))
    return cols, grid.reshape(b, h, w)


@settings(max_examples=60, deadline=None)
@given(palettes_and_grids())
def test_palette_images_round_trip_exactly(case):
    cols, grid = case
    c = codec_with(cols)
    img = c.decode(grid)
    assert np.array_equal(c.encode(img), grid)
    assert np.array_equal(c.decode(c.encode(img)), img)
    tokens, moved = c.encode_counted(img)
    assert moved == 0
    for dither in ("none", "bayer", "floyd"):  # palette pixels are fixed points of every dither
        assert np.array_equal(c.convert(img, dither=dither), grid)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 24))
def test_encode_decode_encode_is_a_fixed_point(seed, n):
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, 256, (n, 4)).astype(np.uint8)
    cols[:, 3] = rng.choice([255, 255, 128, 40], n)
    cols = cols[np.unique(quantize.pack(cols), return_index=True)[1]]
    c = codec_with(cols)
    img = rng.integers(0, 256, (2, 5, 7, 4)).astype(np.uint8)
    img[0, 0, :, 3] = 0
    t1 = c.encode(img)
    assert t1.shape == (2, 5, 7) and t1.max() < c.vocab_size
    assert np.array_equal(c.encode(c.decode(t1)), t1)
    assert (t1[0, 0] == 0).all()  # fully transparent pixels are index 0


def test_large_palette_uses_uint16_and_still_round_trips():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(1 << 24, 2**32, 3000, dtype=np.uint64).astype(np.uint32))
    c = codec_with(quantize.unpack(keys))
    assert c.token_dtype == np.uint16
    grid = rng.integers(0, c.vocab_size, (3, 20, 20))
    assert np.array_equal(c.encode(c.decode(grid)), grid)


# -- nearest colour, transparency ------------------------------------------------------------------
def test_lookup_and_nearest_in_blocks_equal_one_block(monkeypatch):
    """Block sizes only bound the temporaries: tiny blocks (odd sizes, lone last rows) give the
    same indices as blocks larger than the input, for exact hits, hash clashes and nearest colours."""
    rng = np.random.default_rng(6)
    keys = np.unique(rng.integers(1 << 24, 2**32, 20000, dtype=np.uint64).astype(np.uint32))
    big = quantize.unpack(keys)
    small = rng.integers(0, 256, (12, 4)).astype(np.uint8)
    small[:, 3] = rng.choice([255, 128, 40], 12)
    for pal in (big, small[np.unique(quantize.pack(small), return_index=True)[1]]):
        c = codec_with(pal)
        index = c._need()
        clash = np.nonzero(index.keys[index.table[(index.keys * index.mult) >> index.shift]] != index.keys)[0]
        assert len(clash) > 0 or len(pal) < 100  # the big palette takes the binary-search path
        img = rng.integers(0, 256, (2, 31, 33, 4)).astype(np.uint8)
        hits = np.concatenate([clash, rng.integers(0, c.vocab_size, 5 * 33)])[: 5 * 33]
        img[0, :5] = c.palette[hits].reshape(5, 33, 4)  # exact hits too
        want = c.encode(img)
        assert np.array_equal(want[0, :5].ravel(), hits)
        monkeypatch.setattr(quantize, "_LOOKUP_BLOCK", 7)
        monkeypatch.setattr(quantize, "_CHUNK", 3 * (c.vocab_size - 1))  # 3 rows a block
        assert np.array_equal(codec_with(pal).encode(img), want)
        monkeypatch.undo()


def test_nearest_colour_matches_a_brute_force_search():
    rng = np.random.default_rng(2)
    pal = rng.integers(0, 256, (12, 4)).astype(np.uint8)
    pal[:, 3] = 255
    c = codec_with(pal)
    img = rng.integers(0, 256, (1, 9, 9, 4)).astype(np.uint8)
    img[..., 3] = 255
    got = c.encode(img).ravel()
    lab_pal = srgb_to_lab(c.palette[1:, :3])
    for pix, tok in zip(img.reshape(-1, 4), got, strict=True):
        d = ((lab_pal - srgb_to_lab(pix[:3])) ** 2).sum(1)
        assert d[tok - 1] <= d.min() + 1e-9


def test_nearest_is_perceptual_not_rgb():
    # in sRGB (0, 0, 120) is nearer black than pure blue, and grey (60, 60, 60) nearer (60, 60, 160)
    # than black; in CIELAB it is the other way round both times
    for pal, px, want in (([[0, 0, 0], [0, 0, 255]], [0, 0, 120], 2), ([[0, 0, 0], [60, 60, 160]], [60, 60, 60], 1)):
        rgb = np.array(pal, float)
        assert np.linalg.norm(rgb - px, axis=1).argmin() + 1 != want
        c = codec_with([[*p, 255] for p in pal])
        assert c.encode(np.array([[[[*px, 255]]]], np.uint8)).item() == want


def test_alpha_snaps_before_colour():
    c = codec_with([[0, 0, 0, 255], [255, 255, 255, 255], [0, 0, 0, 96]])
    px = np.array([[[[250, 250, 250, 20], [250, 250, 250, 255], [10, 10, 10, 100], [10, 10, 10, 200],
                     [1, 2, 3, 0], [0, 0, 0, 96]]]], np.uint8)
    assert c.encode(px).ravel().tolist() == [0, 2, 3, 1, 0, 3]
    opaque = get_codec("palette:pico8")  # with no translucent entries alpha < 128 is transparent
    a = np.array([[[[255, 0, 77, 127], [255, 0, 77, 128]]]], np.uint8)
    assert opaque.encode(a).ravel().tolist() == [0, 9]


def test_encode_is_vectorised(tiles):
    c = get_codec("palette:auto/32")
    c.fit([tiles])
    img = c.decode(c.encode(tiles))
    lut = {tuple(int(v) for v in col): i for i, col in enumerate(c.palette)}
    sub = img[:4]
    t0 = time.perf_counter()
    slow = np.array([[[lut[tuple(int(v) for v in px)] for px in row] for row in im] for im in sub])
    t_slow = (time.perf_counter() - t0) / sub.shape[0]
    t0 = time.perf_counter()
    fast = c.encode(img)
    t_fast = (time.perf_counter() - t0) / img.shape[0]
    assert np.array_equal(fast[:4], slow)
    assert t_slow / t_fast > 20, f"only {t_slow / t_fast:.1f}x a per-pixel dict lookup"


# -- fitting: auto/N -----------------------------------------------------------------------------------
def test_auto_keeps_exact_colours_when_few():
    rng = np.random.default_rng(3)
    cols = np.array([[200, 10, 10, 255], [10, 200, 10, 255], [10, 10, 200, 255], [0, 0, 0, 100]], np.uint8)
    idx = rng.permutation(np.repeat(np.arange(4), [60, 50, 20, 14])).reshape(4, 6, 6)
    img = cols[idx]
    img[idx == 3] = [0, 0, 0, 100]
    img[:, 0, 0] = 0  # transparent pixels are index 0, not a palette colour
    c = get_codec("palette:auto/8")
    c.fit(iter([img[:2], img[2:]]))
    assert c.vocab_size == 5 and c.fit_stats["moved_pixels"] == 0
    mask = np.ones(idx.shape, bool)
    mask[:, 0, 0] = False
    counts = np.bincount(idx[mask], minlength=4)
    assert [tuple(p) for p in c.palette[1:]] == [tuple(cols[i]) for i in np.argsort(-counts, kind="stable")]
    assert np.array_equal(c.decode(c.encode(img)), img)


def test_auto_reduces_and_counts_moved_pixels(tiles):
    c = get_codec("palette:auto/16")
    c.fit([tiles[:50], tiles[50:]])
    assert c.vocab_size == 17
    keys = quantize.pack(tiles).ravel()
    visible = keys[keys != 0]
    in_palette = np.isin(visible, quantize.pack(c.palette))
    s = c.fit_stats
    assert s["moved_pixels"] == int((~in_palette).sum()) > 0
    assert s["visible_pixels"] == len(visible) and s["distinct_colors"] == len(np.unique(visible))
    assert "moved to the nearest palette colour" in c.fit_summary()
    # the learnt palette travels in the config: a rebuilt codec encodes identically
    again = codec_from_config(json.loads(json.dumps(c.config())))
    assert not again.needs_fit and np.array_equal(again.encode(tiles), c.encode(tiles))
    assert c.encode_counted(tiles)[1] == s["moved_pixels"]


def test_fit_estimates_mean_delta_e_from_a_sample_when_colours_are_many(tiles, monkeypatch):
    from artforge_palette import codec as codec_mod

    exact = get_codec("palette:auto/16")
    exact.fit([tiles])
    assert "moved_delta_e_sample" not in exact.fit_stats and "sampled" not in exact.fit_summary()
    monkeypatch.setattr(codec_mod, "DELTA_E_EXACT", 100)
    monkeypatch.setattr(codec_mod, "DELTA_E_SAMPLE", 4096)
    est = get_codec("palette:auto/16")
    est.fit([tiles])
    s, want = est.fit_stats, exact.fit_stats["moved_mean_delta_e"]
    assert np.array_equal(est.palette, exact.palette) and s["moved_pixels"] == exact.fit_stats["moved_pixels"]
    assert s["moved_delta_e_sample"] == 4096 and 0 < s["moved_delta_e_stderr"] < 0.5
    assert abs(s["moved_mean_delta_e"] - want) < 4 * s["moved_delta_e_stderr"]
    assert "estimated from 4,096 sampled pixels" in est.fit_summary()
    again = codec_from_config(json.loads(json.dumps(est.config())))
    assert again.fit_summary() == est.fit_summary()


def test_reduction_beats_a_uniform_palette(tiles):
    c = get_codec("palette:auto/16")
    c.fit([tiles])
    vis = tiles[tiles[..., 3] == 255][:, :3]

    def err(codec):
        got = codec.decode(codec.encode(np.concatenate([vis, np.full((len(vis), 1), 255, np.uint8)], 1)[None]))
        return np.sqrt(((srgb_to_lab(got[0, :, :3]) - srgb_to_lab(vis)) ** 2).sum(1)).mean()

    assert err(c) < 0.7 * err(get_codec("palette:cga"))


# -- dithering -------------------------------------------------------------------------------------
def _ramp(h=16, w=64):
    g = np.tile(np.linspace(0, 255, w), (h, 1)).round().astype(np.uint8)
    return np.dstack([g, g, g, np.full_like(g, 255)])[None]


def test_dithering_keeps_average_brightness():
    c = get_codec("palette:bw")
    img = _ramp()
    none, bayer, floyd = (c.convert(img, dither=d) for d in ("none", "bayer", "floyd"))
    bright = img[0, :, :, 0].astype(float).reshape(16, 8, 8).mean((0, 2)) / 255
    for out in (bayer, floyd):
        white = (out[0] == 2).reshape(16, 8, 8).mean((0, 2))
        assert np.abs(white - bright).max() < 0.2
        assert set(np.unique(out)) <= {1, 2}
    white_none = (none[0] == 2).reshape(16, 8, 8).mean((0, 2))
    assert np.abs(white_none - bright).max() > 0.35  # plain mapping bands
    assert not np.array_equal(bayer, floyd)


def test_bayer_is_the_4x4_pattern():
    c = get_codec("palette:bw")
    flat = np.full((1, 8, 8, 4), 128, np.uint8)
    flat[..., 3] = 255
    out = c.convert(flat, dither="bayer")[0]
    assert np.array_equal(out[:4, :4], out[4:, 4:]) and len(np.unique(out)) == 2
    assert abs((out == 2).mean() - 0.5) <= 0.125


def _floyd_reference(img: np.ndarray, codec: PaletteCodec) -> np.ndarray:
    """Textbook sequential Floyd-Steinberg, pixel by pixel (what the wavefront version must equal)."""
    index = quantize.PaletteIndex(codec.palette)
    h, w = img.shape[:2]
    work = srgb_to_lab(img[..., :3])
    out = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            idx, found = index.lookup(quantize.pack(img[y, x][None]))
            if found[0]:
                out[y, x] = idx[0]
                continue
            target = np.clip(work[y, x], [0, -128, -128], [100, 127, 127])
            lab_pal = srgb_to_lab(codec.palette[:, :3])
            dist = ((lab_pal - target) ** 2).sum(1)
            level = 0 if img[y, x, 3] < 128 else 255  # pico8: transparent or opaque
            k = 0 if level == 0 else int(np.argmin(np.where(codec.palette[:, 3] == level, dist, np.inf)))
            out[y, x] = k
            err = target - lab_pal[k] if k > 0 else np.zeros(3)
            for dy, dx, wgt in ((0, 1, 7 / 16), (1, -1, 3 / 16), (1, 0, 5 / 16), (1, 1, 1 / 16)):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    work[y + dy, x + dx] += wgt * err
    return out


def test_floyd_wavefront_equals_sequential_reference():
    rng = np.random.default_rng(4)
    c = get_codec("palette:pico8")
    imgs = rng.integers(0, 256, (3, 7, 9, 4)).astype(np.uint8)
    imgs[..., 3] = rng.choice([0, 255], imgs.shape[:3], p=[0.15, 0.85])
    imgs[1, 2, 3] = c.palette[5]  # a palette pixel in the middle is kept
    got = c.convert(imgs, dither="floyd")
    for i in range(3):
        assert np.array_equal(got[i], _floyd_reference(imgs[i], c))


def test_diagonal_order_is_by_x_plus_2y_then_y():
    for h in range(1, 9):
        for w in range(1, 12):
            order, ylo, start = quantize._diagonal_order(h, w)
            y, x = np.divmod(np.arange(h * w), w)
            assert np.array_equal(order, np.lexsort((y, x + 2 * y)))
            assert np.array_equal(np.diff(start), np.bincount(x + 2 * y)) and np.array_equal(ylo, y[order][start[:-1]])


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 12), (2, 11, 1), (1, 2, 2), (2, 13, 6), (1, 5, 17)])
def test_floyd_on_thin_and_odd_shapes_equals_sequential_reference(shape):
    """The diagonal-major storage has edge cases where diagonals are one pixel long or start late."""
    rng = np.random.default_rng(7)
    c = get_codec("palette:pico8")
    imgs = rng.integers(0, 256, (*shape, 4)).astype(np.uint8)
    imgs[..., 3] = rng.choice([0, 255], shape, p=[0.15, 0.85])
    imgs.reshape(-1, 4)[:: 5] = c.palette[3]  # kept palette pixels, some diagonals with nothing to do
    got = c.convert(imgs, dither="floyd")
    for i in range(shape[0]):
        assert np.array_equal(got[i], _floyd_reference(imgs[i], c))


def test_convert_rejects_unknown_options():
    c = get_codec("palette:pico8")
    with pytest.raises(ArtforgeError, match="dither"):
        c.convert(_ramp(), dither="sideways")
    with pytest.raises(ArtforgeError, match="--edges"):
        c.convert(_ramp(), edges=0.5)


# -- palette files -----------------------------------------------------------------------------------
def test_palette_file_formats(tmp_path):
    (tmp_path / "p.gpl").write_text("GIMP Palette\nName: x\nColumns: 4\n# comment\n255 0 0 red\n  0 255 0\tgreen\n"
                                    "255 0 0 again\n")
    (tmp_path / "p.json").write_text('["#f00", "00ff00", "#0000ff80"]')
    (tmp_path / "p.hex").write_text("ff0000\n00ff00\n")
    Image.fromarray(np.array([[[255, 0, 0, 255], [0, 0, 0, 0], [0, 255, 0, 255], [255, 0, 0, 255]]], np.uint8),
                    "RGBA").save(tmp_path / "p.png")
    red, green = (255, 0, 0, 255), (0, 255, 0, 255)
    assert [tuple(c) for c in read_palette(tmp_path / "p.gpl")] == [red, green]
    assert [tuple(c) for c in read_palette(tmp_path / "p.json")] == [red, green, (0, 0, 255, 128)]
    assert [tuple(c) for c in read_palette(tmp_path / "p.hex")] == [red, green]
    assert [tuple(c) for c in read_palette(tmp_path / "p.png")] == [red, green]
    c = get_codec(f"palette:{tmp_path / 'p.json'}")
    assert c.vocab_size == 4 and c.config()["colors"] == ["#ff0000", "#00ff00", "#0000ff80"]


@pytest.mark.parametrize("suffix", [".gpl", ".json", ".hex", ".png"])
def test_palette_write_read_round_trip(tmp_path, suffix):
    cols = np.array([[1, 2, 3, 255], [250, 10, 20, 255], [5, 5, 5, 77]], np.uint8)
    if suffix == ".hex":
        cols[:, 3] = 255
    p = write_palette(cols, tmp_path / f"pal{suffix}")
    assert np.array_equal(read_palette(p), cols)


@pytest.mark.parametrize("name, text, message", [
    ("bad.gpl", "GIMP Palette\n255 0 0\n12 300 4 too-bright\n", "line 3: bad colour"),
    ("bad2.gpl", "GIMP Palette\n255 zero 0\n", "line 2: bad colour"),
    ("nohead.gpl", "255 0 0\n", "not a GIMP palette"),
    ("bad.json", '["#ff0000", "#12345"]', "entry 2: bad colour '#12345'"),
    ("bad2.json", '{"a": 1}', "expected a JSON list"),
    ("bad3.json", "[not json", "invalid JSON"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, r"invalid JSON \(nested too deeply\)"),  # was a RecursionError
    ("bad.hex", "ff0000\nnothex\n", "entry 2: bad colour"),
    ("empty.json", "[]", "no visible colours"),
    ("pal.txt", "ff0000\n", "unknown palette format"),
])
def test_bad_palette_files(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(BadInput, match=message) as err:
        read_palette(p)
    assert str(err.value).startswith(str(p)) and "\n" not in str(err.value)


def test_too_many_colours(tmp_path):
    keys = np.arange(1, 65538, dtype=np.uint32) | np.uint32(0xFF000000)
    hexes = [f"#{k & 0xFFFFFF:06x}" for k in keys.tolist()]
    (tmp_path / "big.json").write_text(json.dumps(hexes))
    with pytest.raises(BadInput, match="65,537 colours; a palette holds at most 65,536"):
        read_palette(tmp_path / "big.json")
    (tmp_path / "big.gpl").write_text("GIMP Palette\n" + "".join(f"{k & 255} {(k >> 8) & 255} 0\n"
                                                                for k in keys.tolist()))
    with pytest.raises(BadInput, match="more than 65,536"):
        read_palette(tmp_path / "big.gpl")
    ok = tmp_path / "max.hex"
    ok.write_text("\n".join(h[1:] for h in hexes[:65536]))
    assert len(read_palette(ok)) == 65536


def test_bad_palette_file_on_the_command_line(tmp_path):
    (tmp_path / "bad.gpl").write_text("GIMP Palette\n1 2 3\n1 2\n")
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(tmp_path / "x.png")
    r = run("encode", "-c", f"palette:{tmp_path / 'bad.gpl'}", tmp_path / "x.png", "-o", tmp_path / "t.npz", ok=False)
    assert f"{tmp_path / 'bad.gpl'}: line 3: bad colour" in r.output and len(r.output.strip().splitlines()) == 1


# -- commands -----------------------------------------------------------------------------------------
def test_palette_extract_and_show(tmp_path):
    out = tmp_path / "pal.gpl"
    r = run("palette", "extract", "builtin:tiles32", "-n", "12", "-o", out, "--swatch", tmp_path / "sw.png")
    assert "12 colours from" in r.output and "pixels" in r.output and "moved" in r.output
    pal = read_palette(out)
    assert len(pal) == 12
    assert Image.open(tmp_path / "sw.png").size == (12 * 16, 16)
    c = get_codec(f"palette:{out}")
    assert c.vocab_size == 13
    r = run("palette", "show", "nes")
    assert "54 colours" in r.output
    run("palette", "extract", "builtin:tiles32", "-o", tmp_path / "pal.txt", ok=False)


def test_palette_extract_refuses_one_file_for_the_palette_and_its_swatch(tmp_path):
    """-o p.png --swatch p.png: the swatch would replace the palette just written."""
    (tmp_path / "p.png").write_bytes(b"kept")
    for swatch in (tmp_path / "p.png", f"{tmp_path}/./p.png"):
        r = run("palette", "extract", "builtin:tiles32", "-o", tmp_path / "p.png", "--swatch", swatch, ok=False)
        assert r.output.strip() == f"Error: {swatch}: is also the -o file; give --swatch another name"
    assert (tmp_path / "p.png").read_bytes() == b"kept"


def test_convert_a_picture_to_pixel_art(tmp_path):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:96, 0:128]
    photo = np.dstack([xx * 2, yy * 2, 255 - xx, np.full_like(xx, 255)]) + rng.integers(-20, 20, (96, 128, 4))
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8), "RGBA").save(tmp_path / "photo.png")
    pico = {tuple(c) for c in get_codec("palette:pico8").palette.tolist()}
    for dither in ("none", "bayer", "floyd"):
        out = tmp_path / f"{dither}.png"
        run("convert", tmp_path / "photo.png", "--codec", "palette:pico8", "--size", "32", "--dither", dither,
            "-o", out)
        img = np.array(Image.open(out).convert("RGBA"))
        assert img.shape == (32, 32, 4)
        assert {tuple(p) for p in img.reshape(-1, 4).tolist()} <= pico
    run("convert", tmp_path / "photo.png", "--codec", "palette:auto/6", "--size", "24", "-o", tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as z:
        assert z["tokens"].shape == (1, 24, 24) and z["tokens"].max() <= 6


def test_data_build_stores_the_fitted_palette(tmp_path):
    import h5py

    from artforge.data.cache import build_cache, cache_info

    r = build_cache("builtin:tiles32", "palette:auto/24", tmp_path / "c.h5", workers=1, progress=False)
    info = cache_info(r.path)
    assert info["vocab_size"] == 25 and len(info["codec"]["colors"]) == 24
    assert info["codec"]["fit"]["moved_pixels"] > 0
    with h5py.File(r.path) as f:
        tokens, names = f["tokens"][:8], f["names"][:8].astype(str).tolist()
    with np.load(TILES) as z:
        order = {n: i for i, n in enumerate(z["names"].tolist())}
        images = z["images"][[order[n] for n in names]]
    assert np.array_equal(codec_from_config(info["codec"]).encode(images), tokens)


# -- renderer -------------------------------------------------------------------------------------------
def test_renderer_hard_and_soft():
    import torch

    from artforge.renderers import get_renderer, one_hot

    c = get_codec("palette:gameboy")
    r = get_renderer(c)
    tok = torch.randint(0, c.vocab_size, (2, 5, 6))
    hard = r(tok)
    assert hard.shape == (2, 4, 5, 6)
    expect = torch.from_numpy(c.decode(tok.numpy())).float().permute(0, 3, 1, 2) / 255
    assert torch.allclose(hard, expect)
    assert torch.allclose(r(one_hot(tok, c.vocab_size)), hard)
    mix = torch.zeros(1, c.vocab_size, 1, 1)
    mix[0, 1], mix[0, 4] = 0.5, 0.5
    want = torch.from_numpy((c.palette[1] / 255.0 + c.palette[4] / 255.0) / 2).float()
    assert torch.allclose(r(mix)[0, :, 0, 0], want, atol=1e-6)


def test_many_distinct_colours_are_binned_without_losing_fit(monkeypatch):
    """Above MAX_POINTS distinct colours k-means runs on 5-bit bins (minutes -> seconds on photos);
    the palette it finds serves the pixels about as well as k-means on every colour."""
    from artforge_palette import quantize
    from artforge_palette.colorspace import srgb_to_lab

    rng = np.random.default_rng(1)
    rgb = np.clip(rng.normal(128, 50, (6000, 3)), 0, 255).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((6000, 1), 255, np.uint8)], 1)
    keys, counts = np.unique(quantize.pack(rgba), return_counts=True)

    def mean_error(colors):
        lab, pal = srgb_to_lab(quantize.unpack(keys)[:, :3]), srgb_to_lab(colors[:, :3])
        d = np.sqrt(((lab[:, None] - pal[None]) ** 2).sum(-1)).min(1)
        return float((d * counts).sum() / counts.sum())

    every = quantize.reduce_colors(keys, counts, 32)
    monkeypatch.setattr(quantize, "MAX_POINTS", 1000)
    binned = quantize.reduce_colors(keys, counts, 32)
    assert len(binned) == len(every) == 32 and (binned[:, 3] == 255).all()
    assert mean_error(binned) < 1.05 * mean_error(every)


def test_translucent_colours_are_binned_to_at_most_max_bins(monkeypatch):
    """Translucent colours can fill 2^19 5-bit RGB + 4-bit alpha bins; bins coarsen until at most
    MAX_BINS are used, the bins' weighted mean is still the colours' mean, and the palette serves
    the colours in k-means' own space (L*, a*, b*, alpha) about as well as k-means on every colour."""
    rng = np.random.default_rng(8)
    rgba = rng.integers(0, 256, (20000, 4)).astype(np.uint8)
    rgba[:, 3] = rng.integers(1, 255, 20000)
    keys, counts = np.unique(quantize.pack(rgba), return_counts=True)
    rgba = quantize.unpack(keys)
    feats = quantize.features(rgba)
    monkeypatch.setattr(quantize, "MAX_BINS", 4096)
    points, weights = quantize._binned(rgba, counts.astype(np.float64))
    assert len(points) <= 4096 and weights.sum() == counts.sum()
    np.testing.assert_allclose(weights @ points / weights.sum(), counts @ feats / counts.sum())

    def spread(colors):
        _, d = quantize._nearest_centre(feats, quantize.features(colors))
        return float(np.sqrt(d) @ counts / counts.sum())

    every = quantize.reduce_colors(keys, counts, 32)
    monkeypatch.setattr(quantize, "MAX_POINTS", 1000)
    binned = quantize.reduce_colors(keys, counts, 32)
    assert len(binned) >= 30 and len(every) >= 30  # rounding to bytes can merge two centres
    assert spread(binned) < 1.05 * spread(every), (spread(binned), spread(every))
