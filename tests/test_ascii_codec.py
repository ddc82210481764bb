"""The ascii codec: specs, layout (tabs, padding, centring, crop, replace), round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from artforge.codecs import codec_from_config, get_codec
from artforge.errors import ArtforgeError, BadInput

from conftest import invoke

PRINTABLE = "".join(chr(c) for c in range(32, 127))


def grid(codec, text: str) -> list[str]:
    return codec.to_text(codec.encode([text])[0]).split("\n")


def test_every_printable_character_round_trips():
    codec = get_codec("ascii:24x6")
    assert codec.vocab_size == 95 and codec.token_dtype == np.uint8
    body = PRINTABLE[1:]  # 94 visible characters, in lines of 24 with the space inside the first one
    text = "\n".join(["a b" + body[:21], *(body[i : i + 24] for i in range(21, 94, 24))])
    tokens = codec.encode([text])
    assert tokens.shape == (1, 6, 24)
    assert set(np.unique(tokens)) == set(range(95))
    assert codec.piece_text(tokens[0]) == text
    again = codec.encode([codec.to_text(tokens[0])])
    np.testing.assert_array_equal(again, tokens)
    # the token of a character is its charset index
    assert [codec.chars[t] for t in tokens[0, 0, :3]] == ["a", " ", "b"]


lines = st.lists(st.text(alphabet=PRINTABLE, max_size=12), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(lines)
@example(["  ", "", " "])  # a blank canvas
def test_encode_decode_encode_is_a_fixed_point(rows):
    codec = get_codec("ascii:12x6")
    text = "\n".join(rows)
    if not text.replace("\n", ""):  # spaces alone are a blank canvas; line breaks alone are nothing
        with pytest.raises(ArtforgeError, match="blank"):
            codec.encode([text])
        return
    tokens = codec.encode([text])
    np.testing.assert_array_equal(codec.encode([codec.to_text(tokens[0])]), tokens)
    np.testing.assert_array_equal(codec.encode([codec.piece_text(tokens[0])]), tokens)
    pic = codec.decode(tokens)
    h, w = codec.atlas.cell
    assert pic.shape == (1, 6 * h, 12 * w, 4) and pic.dtype == np.uint8


def test_tabs_padding_and_centring():
    codec = get_codec("ascii:12x5")
    g = grid(codec, "a\tb\nc")
    # a 9x2 piece in a 12x5 grid: 1 column left, 2 right; 1 row above, 2 below
    assert g == [" " * 12, " a       b  ", " c          ", " " * 12, " " * 12]
    # common indent, trailing spaces and blank edge lines do not count
    assert grid(codec, "\n\n    xx   \n     y\n\n") == grid(codec, "xx\n y")
    fit = get_codec("ascii")
    assert fit.encode(["ab\n\tc"]).shape == (1, 2, 9)


def test_too_big_is_an_error_unless_cropped():
    text = "\n".join(["0123456789"] * 3 + ["abcdefghij"])
    with pytest.raises(ArtforgeError, match=r"10x4 characters, larger than the 6x2 grid.*,crop"):
        get_codec("ascii:6x2").encode([text])
    g = grid(get_codec("ascii:6x2,crop"), text)
    assert g == ["234567", "234567"]  # the centre two rows and columns 2..7


def test_a_crop_that_leaves_no_ink_is_a_blank_canvas_through_the_cli(runner, tmp_path):
    """docs/plugins/ascii.md: a text with no ink is a blank canvas, which any fixed grid takes, and
    ,crop keeps the grid's centre: where the centre holds no ink, the piece is that blank grid (it was
    refused with 'nothing is left of the piece'). Without ,crop the piece is still refused, naming the file."""
    corners = tmp_path / "corners.txt"
    corners.write_text("#        #\n\n\n\n#        #\n")  # 10x5, ink only in the corners
    r = invoke(runner, "encode", corners, "-c", "ascii:4x1,crop", "-o", tmp_path / "c.npz")
    assert "nothing is left" not in r.output
    with np.load(tmp_path / "c.npz") as z:
        tokens = z["tokens"]
    assert tokens.shape == (1, 1, 4) and (tokens == get_codec("ascii:4x1,crop").space).all()
    invoke(runner, "decode", tmp_path / "c.npz", "-o", tmp_path / "c.png")
    r = invoke(runner, "encode", corners, "-c", "ascii:4x1", "-o", tmp_path / "n.npz", ok=False)
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "corners.txt" in errors[0], r.output
    assert "corners.txt: piece is 10x5 characters, larger than the 4x1 grid" in r.output
    assert not (tmp_path / "n.npz").exists()


def test_characters_outside_the_charset_error_or_are_replaced():
    with pytest.raises(ArtforgeError, match=r"'é' \(U\+00E9\) at line 2, column 3 .*replace="):
        get_codec("ascii:8x4").encode(["abc\nxyé\n"])
    assert grid(get_codec("ascii:8x4,replace=?"), "abc\nxyé\n")[1:3] == ["  abc   ", "  xy?   "]
    ramp = get_codec("ascii:4x1,charset=ramp,replace=@")
    assert grid(ramp, "a.b") == ["@.@ "]


def test_specs_and_configs():
    c = get_codec("ascii:80x40,crop,replace=\\,,chars=\\s.\\,:#,px=9")
    assert (c.cols, c.rows, c.crop, c.replace, c.chars, c.px) == (80, 40, True, ",", " .,:#", 9)
    assert c.spec == "ascii:80x40,crop,replace=\\,,chars=\\s.\\,:#,px=9"
    assert codec_from_config(c.config()).config() == c.config()
    assert get_codec(c.spec).config() == c.config()
    assert get_codec("ascii:64x64").spec == "ascii:64x64"
    assert get_codec("ascii:64x64,charset=printable").spec == "ascii:64x64"
    assert get_codec("ascii").token_shape is None


@pytest.mark.parametrize("spec, message", [
    ("ascii:0x10", "width 0 is out of range"),
    ("ascii:10x0", "height 0 is out of range"),
    ("ascii:513x10", "1 to 512"),
    ("ascii:10x600", "1 to 512"),
    ("ascii:8x8,chars=abca\\s", "duplicate characters: 'a'"),
    ("ascii:8x8,chars=abc", "must include the space"),
    ("ascii:8x8,charset=nope", "unknown charset 'nope'"),
    ("ascii:8x8,replace=~,charset=ramp", "replacement must be one character of the charset"),
    ("ascii:8x8,wobble", "cannot read 'wobble'"),
    ("ascii:8x8,px=2", "4-128"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ArtforgeError, match=message):
        get_codec(spec)


def test_bad_files(tmp_path):
    codec = get_codec("ascii:8x4")
    cases = {
        "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        "latin1.txt": ("caf\xe9".encode("latin-1"), r"not UTF-8 text \(byte 0xe9 at offset 3\)"),
        "empty.txt": (b"", r"empty file \(0 bytes\)"),
        "breaks.txt": (b"\n\r\n\n", r"empty file \(only line breaks\)"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(BadInput, match=message) as info:
            codec.read(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "big.txt").write_text("x" * 9)
    with pytest.raises(BadInput, match=r"big.txt: piece is 9x1 characters"):
        codec.read(tmp_path / "big.txt")
    with pytest.raises(BadInput, match="no such file"):
        codec.read(tmp_path / "missing.txt")


def test_native_files_round_trip(tmp_path):
    codec = get_codec("ascii:16x8")
    tokens = codec.encode([" /\\_/\\\n( o.o )\n > ^ <"])
    codec.write_native(tokens[0], tmp_path / "cat.txt")
    assert (tmp_path / "cat.txt").read_text() == " /\\_/\\\n( o.o )\n > ^ <\n"
    np.testing.assert_array_equal(codec.encode([codec.read(tmp_path / "cat.txt")]), tokens)
    codec.write_texts(np.concatenate([tokens, tokens]), tmp_path / "two.txt")
    lines = (tmp_path / "two.txt").read_text().split("\n")
    assert len(lines) == 8 + 1 + 8 + 1 and lines[8] == "" and lines[-1] == ""  # whole grids, one blank line apart
    assert lines[:8] == lines[9:17] and all(line == line.rstrip() for line in lines)
    np.testing.assert_array_equal(codec.encode(["\n".join(lines[9:17])]), tokens)


def test_blank_texts_are_blank_canvases():
    """A text with no ink keeps its size when the grid fits the text, and fills any fixed grid."""
    fit = get_codec("ascii")
    assert fit.encode([" " * 5 + "\n\t\n"]).shape == (1, 2, 8)  # 2 lines, the tab 8 wide; one final break
    assert grid(fit, "   \n\n") == ["   ", "   "]
    assert (get_codec("ascii:6x3").encode(["  \n" * 9]) == get_codec("ascii:6x3").space).all()
    with pytest.raises(ArtforgeError, match="blank text: nothing but line breaks"):
        get_codec("ascii:6x3").encode(["\n\n"])
    with pytest.raises(ArtforgeError, match=r"blank text is 600x1 characters"):
        fit.encode([" " * 600])


def test_blank_pictures_round_trip_through_txt(runner, tmp_path):
    """A blank picture (plain white, or fully transparent) converts to a blank grid. Its .txt used
    to be a lone line break that render, encode and data build then refused as an empty file."""
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(tmp_path / "white.jpg")
    Image.fromarray(np.zeros((64, 64, 4), np.uint8)).save(tmp_path / "clear.png")
    texts = tmp_path / "texts"
    texts.mkdir()
    for name in ("white.jpg", "clear.png"):
        invoke(runner, "convert", tmp_path / name, "-c", "ascii:32x16", "-o", texts / (name[:5] + ".txt"))
        assert (texts / (name[:5] + ".txt")).read_text() == (" " * 32 + "\n") * 16  # the whole grid
    codec = get_codec("ascii:32x16")
    invoke(runner, "render", texts / "white.txt", "-o", tmp_path / "w.png")  # fits the text: 32x16
    h, w = codec.atlas.cell
    rendered = np.asarray(Image.open(tmp_path / "w.png"))
    assert rendered.shape[:2] == (16 * h, 32 * w) and rendered.min() == 255
    invoke(runner, "encode", texts, "-c", "ascii:32x16", "-o", tmp_path / "w.npz")
    assert (np.load(tmp_path / "w.npz")["tokens"] == codec.space).all()
    r = invoke(runner, "data", "build", texts, "-c", "ascii:32x16", "-o", tmp_path / "w.h5")
    assert "2 items, skipped 0" in r.output
    (tmp_path / "breaks.txt").write_text("\n\n")
    r = invoke(runner, "render", tmp_path / "breaks.txt", "-o", tmp_path / "b.png", ok=False)
    assert "breaks.txt: empty file (only line breaks)" in r.output


def test_render_and_convert_commands(runner, tmp_path):
    art = tmp_path / "art.txt"
    art.write_text("  _\n (_)\n")
    invoke(runner, "render", art, "-o", tmp_path / "art.png")
    codec = get_codec("ascii")
    want = codec.decode(codec.encode([art.read_text()]))[0]
    got = np.asarray(Image.open(tmp_path / "art.png").convert("RGBA"))
    h, w = codec.atlas.cell
    assert got.shape == (2 * h, 3 * w, 4)
    np.testing.assert_array_equal(got, want)
    (tmp_path / "bad.txt").write_bytes(b"\x00\x01")
    r = invoke(runner, "render", tmp_path / "bad.txt", "-o", tmp_path / "bad.png", ok=False)
    assert "binary file" in r.output and len(r.output.strip().splitlines()) == 1

    img = np.full((40, 40, 4), 255, np.uint8)
    img[8:32, 18:22, :3] = 0  # a vertical bar
    Image.fromarray(img, "RGBA").save(tmp_path / "bar.png")
    invoke(runner, "convert", tmp_path / "bar.png", "--codec", "ascii:10x5", "-o", tmp_path / "bar.txt",
           "--png", tmp_path / "bar_ascii.png", "--edges", "0.3")
    text = (tmp_path / "bar.txt").read_text()
    assert set(text) - set(" \n") and all(ch in PRINTABLE + "\n" for ch in text)
    assert Image.open(tmp_path / "bar_ascii.png").size == (10 * w, 5 * h)
    r = invoke(runner, "convert", tmp_path / "bar.png", "--codec", "ascii:10x5", "-o", tmp_path / "x.txt",
               "--dither", "floyd", ok=False)
    assert "--dither" in r.output


def test_convert_without_a_grid_keeps_tall_pictures_readable(runner, tmp_path):
    """`ascii` (no grid) converts to 80 columns and the rows that keep the picture's aspect, at most
    512 of them. An 8x200 picture used to get 80x1000 (a 2x1000 one 80x19989 and 1.3 GB of
    memory): a .txt that render then refused, being over 512 rows."""
    Image.fromarray(np.zeros((200, 8, 3), np.uint8)).save(tmp_path / "tall.png")
    invoke(runner, "convert", tmp_path / "tall.png", "-c", "ascii", "-o", tmp_path / "tall.txt")
    lines = (tmp_path / "tall.txt").read_text().splitlines()
    assert (len(lines), max(map(len, lines))) == (512, 41)  # 7x14 cells: 512 rows, 512 / (200 / 8 / 2) columns
    invoke(runner, "render", tmp_path / "tall.txt", "-o", tmp_path / "tall-ascii.png")
    h, w = get_codec("ascii").atlas.cell
    assert Image.open(tmp_path / "tall-ascii.png").size == (41 * w, 512 * h)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "square.png")
    invoke(runner, "convert", tmp_path / "square.png", "-c", "ascii", "-o", tmp_path / "square.txt")
    lines = (tmp_path / "square.txt").read_text().splitlines()
    assert (len(lines), max(map(len, lines))) == (40, 80)  # as before: 80 columns, half as many rows


def test_fonts_not_a_font_and_proportional(tmp_path):
    (tmp_path / "fake.ttf").write_text("not a font")
    with pytest.raises(BadInput, match=r"fake.ttf: not a TrueType/OpenType font"):
        get_codec(f"ascii:8x8,font={tmp_path / 'fake.ttf'}")
    with pytest.raises(BadInput, match="no such font file"):
        get_codec(f"ascii:8x8,font={tmp_path / 'nope.ttf'}")
    from pathlib import Path

    sans = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not sans.is_file():
        pytest.skip("no proportional system font to try")
    from artforge_ascii.atlas import FontWarning, build_atlas

    with pytest.warns(FontWarning, match="not a monospace font"):
        atlas = build_atlas(PRINTABLE, sans, 12)
    assert not atlas.monospace and atlas.cell[1] >= round(atlas.advance)
