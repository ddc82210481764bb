"""encode / decode / preview / render / convert through the CLI, including bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import ARTFORGE, invoke, subprocess_env


def test_version_and_module_entry(runner):
    from artforge import __version__

    assert __version__ in invoke(runner, "--version").output
    out = subprocess.run([*ARTFORGE, "--version"], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0 and __version__ in out.stdout


def test_help_lists_core_and_plugin_commands(runner):
    out = invoke(runner, "--help").output
    for cmd in ("encode", "decode", "train", "sample", "export", "data", "plugins", "complete"):
        assert cmd in out


def test_help_and_plugins_do_not_import_torch():
    code = (
        "import sys\n"
        "from artforge.cli import cli\n"
        "for args in (['--help'], ['plugins'], ['codecs']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='artforge', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_encode_folder_decode_grid_and_folder(runner, emoji_dir, tmp_path):
    r = invoke(runner, "encode", "--codec", "hsv544", emoji_dir, "-o", tmp_path / "t")
    assert "encoded 24 with hsv544" in r.output
    z = np.load(tmp_path / "t.npz")
    assert z["tokens"].shape == (24, 32, 32) and "a/e001.png" in z["names"].tolist()
    invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size[0] > 32 * 4
    out = tmp_path / "each"  # a name ending in / is a folder, made if missing (one level)
    invoke(runner, "decode", tmp_path / "t.npz", "-o", str(out) + "/")
    assert len(list(out.glob("*.png"))) == 24
    r = invoke(runner, "decode", tmp_path / "t.npz", "-o", str(tmp_path / "no" / "such") + "/", ok=False)
    assert "does not exist" in r.output and not (tmp_path / "no").exists()
    r = invoke(runner, "decode", tmp_path / "t.npz", "-o", str(tmp_path / "grid.png") + "/", ok=False)
    assert "is a file, expected an output folder" in r.output


def test_single_image_round_trip_matches_codec(runner, emoji_dir, tmp_path):
    from artforge.codecs import get_codec

    src = emoji_dir / "a" / "e001.png"
    invoke(runner, "encode", "-c", "hsv433", src, "-o", tmp_path / "one.npz")
    invoke(runner, "decode", tmp_path / "one.npz", "-o", tmp_path / "one.png")
    img = np.array(Image.open(src).convert("RGBA"))
    c = get_codec("hsv433")
    assert np.array_equal(np.array(Image.open(tmp_path / "one.png")), c.decode(c.encode(img[None]))[0])


def test_encode_resizes_with_size(runner, emoji_dir, tmp_path):
    invoke(runner, "encode", "-c", "hsv322", emoji_dir, "--size", "16", "-o", tmp_path / "s.npz")
    assert np.load(tmp_path / "s.npz")["tokens"].shape == (24, 16, 16)


def test_batch_skips_and_counts_bad_files(runner, emoji_dir, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    for f in list((emoji_dir / "a").glob("*.png"))[:3]:
        (d / f.name).write_bytes(f.read_bytes())
    (d / "zero.png").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    good = (emoji_dir / "a" / "e001.png").read_bytes()
    (d / "trunc.png").write_bytes(good[: len(good) // 2])
    r = invoke(runner, "encode", "-c", "hsv544", d, "-o", tmp_path / "m.npz")
    assert "encoded 3" in r.output and "skipped 3" in r.output
    assert "zero.png: empty file" in r.output
    assert "text.png: not an image" in r.output
    assert "trunc.png: unreadable image" in r.output


def test_bad_inputs_are_one_line_errors(runner, emoji_dir, tmp_path):
    src = emoji_dir / "a" / "e001.png"
    r = invoke(runner, "encode", "-c", "hsv904", src, "-o", tmp_path / "x.npz", ok=False)
    assert "hsv904" in r.output and "1-8" in r.output
    r = invoke(runner, "encode", "-c", "nope", src, "-o", tmp_path / "x.npz", ok=False)
    assert "known codecs" in r.output and "hsv" in r.output
    r = invoke(runner, "encode", "-c", "hsv544", src, "-o", tmp_path / "missing" / "x.npz", ok=False)
    assert "output folder" in r.output and "does not exist" in r.output
    r = invoke(runner, "encode", "-c", "hsv544", tmp_path / "nothere.png", "-o", tmp_path / "x.npz", ok=False)
    assert "nothere.png" in r.output
    (tmp_path / "zero.png").write_bytes(b"")
    r = invoke(runner, "encode", "-c", "hsv544", tmp_path / "zero.png", "-o", tmp_path / "x.npz", ok=False)
    assert "zero.png: no usable images (1 skipped)" in r.output
    (tmp_path / "empty").mkdir()
    r = invoke(runner, "convert", "-c", "binary", tmp_path / "empty", "-o", tmp_path / "c.png", ok=False)
    assert "empty: no usable images (no image files found)" in r.output and "Traceback" not in r.output
    r = invoke(runner, "decode", src, "-o", tmp_path / "y.png", ok=False)
    assert "e001.png" in r.output and "not an artforge token file" in r.output


def test_decode_rejects_tokens_of_another_codec(runner, emoji_dir, tmp_path):
    invoke(runner, "encode", "-c", "hsv544", emoji_dir / "a", "-o", tmp_path / "t.npz")
    r = invoke(runner, "decode", tmp_path / "t.npz", "--codec", "hsv433", "-o", tmp_path / "x.png", ok=False)
    assert "made by codec hsv544, not hsv433" in r.output
    z = dict(np.load(tmp_path / "t.npz"))
    z["tokens"] = z["tokens"].astype(np.int64) + 9000  # beyond hsv544's vocabulary
    np.savez(tmp_path / "bad.npz", **z)
    r = invoke(runner, "decode", tmp_path / "bad.npz", "-o", tmp_path / "x.png", ok=False)
    assert "bad.npz" in r.output and "vocabulary" in r.output



def test_decode_codec_check_takes_a_fitted_palette_for_its_spec(runner, emoji_dir, tmp_path):
    """A palette:auto/N token file stores the palette it learned, so its config never equalled the
    unfitted spec's: `decode --codec palette:auto/8` refused the file it named, with "tokens were made
    by codec palette:auto/8, not palette:auto/8"."""
    invoke(runner, "encode", "-c", "palette:auto/8", emoji_dir / "a", "-o", tmp_path / "t.npz")
    r = invoke(runner, "decode", tmp_path / "t.npz", "--codec", "palette:auto/8", "-o", tmp_path / "x.png")
    assert "decoded 12 with palette:auto/8" in r.output
    r = invoke(runner, "decode", tmp_path / "t.npz", "--codec", "palette:auto/16", "-o", tmp_path / "x.png", ok=False)
    assert "made by codec palette:auto/8, not palette:auto/16" in r.output


def test_render_takes_a_token_file_with_its_codec_named(runner, emoji_dir, tmp_path):
    """`render t.npz -c hsv544` read the token file as a picture: "t.npz: not an image (unrecognised
    format)". With --codec a token file is rendered when that codec made it, refused naming both when not."""
    invoke(runner, "encode", "-c", "hsv544", emoji_dir / "a" / "e001.png", "-o", tmp_path / "t.npz")
    invoke(runner, "render", tmp_path / "t.npz", "-o", tmp_path / "plain.png")
    r = invoke(runner, "render", tmp_path / "t.npz", "-c", "hsv544", "-o", tmp_path / "named.png")
    assert "rendered 1 with the hsv renderer" in r.output
    named, plain = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in ("named", "plain"))
    assert np.array_equal(named, plain)
    r = invoke(runner, "render", tmp_path / "t.npz", "-c", "hsv433", "-o", tmp_path / "x.png", ok=False)
    assert f"{tmp_path / 't.npz'}: tokens were made by codec hsv544, not hsv433" in r.output

def test_preview_render_and_convert(runner, emoji_dir, tmp_path):
    imgs = sorted((emoji_dir / "a").glob("*.png"))[:2]
    invoke(runner, "preview", *imgs, "-c", "hsv544", "-c", "hsv322", "-o", tmp_path / "p.png")
    w, h = Image.open(tmp_path / "p.png").size
    assert w > h  # 3 columns, 2 rows
    invoke(runner, "encode", "-c", "hsv433", imgs[0], "-o", tmp_path / "t.npz")
    invoke(runner, "render", tmp_path / "t.npz", "-o", tmp_path / "r.png")
    invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "d.png")
    assert np.array_equal(np.array(Image.open(tmp_path / "r.png")), np.array(Image.open(tmp_path / "d.png")))
    invoke(runner, "convert", imgs[0], "-c", "hsv322", "--size", "16", "-o", tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").size == (16, 16)
    r = invoke(runner, "convert", imgs[0], "-c", "hsv322", "--dither", "floyd", "-o", tmp_path / "c.png", ok=False)
    assert "no option" in r.output


def test_grid_zoom_looks_at_both_sides(runner, emoji_dir, tmp_path):
    """The automatic zoom brings a cell's longer side to about 96 px. It used to look at the height
    only: a 32x8 strip was zoomed 12x, and a 200x1 line 96x (preview and decode wrote PNGs 38,406
    px wide; 20000x1 gave 3,840,006 px that Pillow would not open)."""
    emoji = sorted((emoji_dir / "a").glob("*.png"))[0]
    invoke(runner, "preview", emoji, "-c", "hsv544", "-o", tmp_path / "square.png")
    assert Image.open(tmp_path / "square.png").size == (2 * (96 + 2) + 2, 96 + 4)  # 32 px: 3x, as before
    strip = np.random.default_rng(0).integers(0, 256, (8, 32, 3), dtype=np.uint8)
    Image.fromarray(strip).save(tmp_path / "strip.png")
    invoke(runner, "preview", tmp_path / "strip.png", "-c", "hsv544", "-o", tmp_path / "p.png")
    sheet = np.asarray(Image.open(tmp_path / "p.png"))
    assert sheet.shape == (24 + 4, 2 * (96 + 2) + 2, 3)  # 3x: the 32-px side reaches 96
    assert np.array_equal(sheet[2:26, 2:98], strip.repeat(3, 0).repeat(3, 1))  # nearest neighbour
    lines = tmp_path / "lines"
    lines.mkdir()
    for i in range(2):
        Image.fromarray(np.full((1, 200, 3), 90 * i, np.uint8)).save(lines / f"line{i}.png")
    invoke(runner, "encode", "-c", "hsv544", lines, "-o", tmp_path / "lines.npz")
    invoke(runner, "decode", tmp_path / "lines.npz", "-o", tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").size == (2 * (200 + 2) + 2, 1 + 4)  # already long: no zoom


def test_grid_too_large_to_open_is_refused(runner, tmp_path):
    """A grid past Pillow's decompression-bomb limit (89.5 Mpx; artforge would not read it back
    either) is one line naming the output, before any of it is made, not a 99 Mpx PNG."""
    Image.fromarray(np.zeros((110, 110, 3), np.uint8)).save(tmp_path / "a.png")
    r = invoke(runner, "preview", tmp_path / "a.png", "-c", "hsv544", "--scale", "64", "-o", tmp_path / "p.png",
               ok=False)
    assert len(r.output.strip().splitlines()) == 1
    assert f"{tmp_path / 'p.png'}: a grid of 2 pictures of 110x110 px at zoom 64 would be 14,086x7,044 px" in r.output
    assert "smaller --scale" in r.output and not (tmp_path / "p.png").exists()
    invoke(runner, "preview", tmp_path / "a.png", "-c", "hsv544", "--scale", "16", "-o", tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").size == (2 * (1760 + 2) + 2, 1760 + 4)


def test_convert_a_folder_can_finish_an_interrupted_run(runner, emoji_dir, tmp_path):
    out = tmp_path / "out"
    invoke(runner, "convert", emoji_dir / "a", "-c", "palette:pico8", "-o", out)
    files = sorted(out.glob("*.png"))
    assert len(files) == 12
    files[0].unlink()  # as if the run had stopped before this one
    before = {f.name: f.stat().st_mtime_ns for f in files[1:]}
    r = invoke(runner, "convert", emoji_dir / "a", "-c", "palette:pico8", "-o", out, "--skip-existing")
    assert "converted 1 with palette:pico8" in r.output and "kept 11 existing" in r.output
    assert files[0].is_file() and {f.name: f.stat().st_mtime_ns for f in files[1:]} == before
    r = invoke(runner, "convert", emoji_dir / "a", "-c", "palette:pico8", "-o", out, "--skip-existing")
    assert "converted 0" in r.output and "kept 12 existing" in r.output


def test_odd_image_modes_are_converted(runner, tmp_path):
    d = tmp_path / "modes"
    d.mkdir()
    p = Image.new("P", (8, 8))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.info["transparency"] = 1
    p.paste(1, (0, 0, 4, 8))
    p.save(d / "p_transparent.png", transparency=1)
    Image.new("LA", (8, 8), (100, 128)).save(d / "la.png")
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(d / "cmyk.jpg")
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(d / "grey16.png")
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    invoke(runner, "encode", "-c", "hsv544", d, "-o", tmp_path / "m.npz")
    z = np.load(tmp_path / "m.npz")
    names = z["names"].tolist()
    assert len(names) == 5
    from artforge.codecs import get_codec

    c = get_codec("hsv544")
    dec = c.decode(z["tokens"])
    by = dict(zip(names, dec, strict=True))
    assert by["p_transparent.png"][0, 0, 3] == 0 and by["p_transparent.png"][0, 7, 0] > 200
    assert by["anim.gif"][0, 0, 0] > 200 and by["anim.gif"][0, 0, 2] < 50  # first frame (red)
    assert abs(int(by["grey16.png"][0, 0, 0]) - 156) <= 9  # 40000/65535 of white


def test_written_files_follow_the_umask_like_any_other_program(runner, emoji_dir, tmp_path):
    """Atomic writes go through a private temporary file; the result must not stay private."""
    import os

    invoke(runner, "encode", "--codec", "hsv544", emoji_dir, "-o", tmp_path / "t.npz")
    invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "grid.png")
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("t.npz", "grid.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask


def test_outputs_with_the_longest_legal_name_are_written(runner, emoji_dir, tmp_path):
    """A 255-byte file name is legal on Linux, but the atomic writer's temporary name beside it
    (.NAME.partial-PID-XXXXXXXX) ran past 255 bytes: encode and decode said "File name too long"."""
    name = "é" * 125 + "a.npz"  # 255 bytes of two-byte characters: the cut must fall between them
    assert len(name.encode()) == 255
    tokens = tmp_path / name
    invoke(runner, "encode", "-c", "hsv433", emoji_dir, "-o", tokens)
    png = tmp_path / ("a" * 251 + ".png")
    invoke(runner, "decode", tokens, "-o", png)
    assert tokens.is_file() and Image.open(png).size[0] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, png.name])  # no partial file left


def test_names_that_are_not_utf8_are_printed_as_escapes(runner, emoji_dir, tmp_path):
    """Linux names may hold bytes that are not UTF-8 (Python's surrogate escapes) and line breaks:
    output names were printed raw, so a strict UTF-8 stdout (PYTHONIOENCODING=utf-8, a UTF-8 locale
    other than C.UTF-8) ended encode in UnicodeEncodeError after writing, and a newline split the line."""
    import os

    folder = tmp_path / os.fsdecode(b"d\xff")
    folder.mkdir()
    (folder / "a.png").write_bytes(next((emoji_dir / "a").glob("*.png")).read_bytes())
    out = tmp_path / os.fsdecode(b"o\xfe\n.npz")
    res = subprocess.run([*ARTFORGE, "encode", "-c", "hsv433", str(folder), "-o", str(out)], capture_output=True,
                         env=subprocess_env(PYTHONIOENCODING="utf-8"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == [
        f"encoded 1 with hsv433 -> {tmp_path}/o\\xfe\\n.npz (32x32 tokens each, vocab 1025)"]
    line = invoke(runner, "decode", out, "-o", tmp_path / "p\n.png").output
    assert line == f"decoded 1 with hsv433 -> {tmp_path}/p\\n.png\n"
