"""Every command that writes a picture writes the format its name says (a real JPEG for ``-o x.jpg``, not
PNG bytes under that name), and refuses a suffix that names no picture format before any work."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_HSV as TINY
from conftest import invoke


@pytest.fixture(scope="module")
def one_token_file(tmp_path_factory, emoji_dir):
    from click.testing import CliRunner

    d = tmp_path_factory.mktemp("one")
    invoke(CliRunner(), "encode", "-c", "hsv322", emoji_dir / "a" / "e001.png", "-o", d / "one.npz")
    invoke(CliRunner(), "encode", "-c", "hsv322", emoji_dir / "a", "-o", d / "many.npz")
    return d


def _format(path) -> str:
    with Image.open(path) as im:
        return im.format


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"),
                                         (".gif", "GIF"), (".bmp", "BMP"), (".tif", "TIFF"), (".tga", "TGA"),
                                         (".ppm", "PPM")])
def test_decode_writes_the_format_its_suffix_names(runner, tmp_path, one_token_file, suffix, fmt):
    for which in ("one", "many"):  # one picture, and a grid
        out = tmp_path / f"{which}{suffix.upper() if suffix == '.jpg' else suffix}"
        r = invoke(runner, "decode", one_token_file / f"{which}.npz", "-o", out)
        assert _format(out) == fmt, (which, suffix)
        assert ("note:" in r.output) == (fmt in ("JPEG", "PPM", "BMP", "GIF")), r.output  # loses colours or alpha
    if fmt == "WEBP":  # pixel art stays exact: lossless
        invoke(runner, "decode", one_token_file / "one.npz", "-o", tmp_path / "ref.png")
        assert np.array_equal(np.asarray(Image.open(tmp_path / "one.webp").convert("RGBA")),
                              np.asarray(Image.open(tmp_path / "ref.png").convert("RGBA")))


def test_every_command_writing_a_picture_follows_its_suffix(runner, tmp_path, emoji_dir, tiny_cache,
                                                            one_token_file):
    picture = emoji_dir / "a" / "e001.png"
    invoke(runner, "convert", picture, "-c", "palette:pico8", "-o", tmp_path / "c.jpg", "--png", tmp_path / "p.webp")
    assert _format(tmp_path / "c.jpg") == "JPEG" and _format(tmp_path / "p.webp") == "WEBP"
    invoke(runner, "convert", emoji_dir / "a", "-c", "palette:pico8", "-o", tmp_path / "many.gif")  # a folder
    assert {_format(f) for f in (tmp_path / "many.gif").iterdir()} == {"GIF"}
    invoke(runner, "convert", picture, "-c", "ascii:8x4", "-o", tmp_path / "a.bmp")  # a text codec's picture
    assert _format(tmp_path / "a.bmp") == "BMP"
    invoke(runner, "preview", picture, "-c", "hsv322", "-o", tmp_path / "v.webp")
    invoke(runner, "render", one_token_file / "one.npz", "-o", tmp_path / "r.jpg")
    invoke(runner, "data", "preview", tiny_cache, "-n", "4", "-o", tmp_path / "d.tiff")
    invoke(runner, "palette", "show", "pico8", "-o", tmp_path / "s.jpg")
    invoke(runner, "palette", "extract", picture, "-n", "4", "-o", tmp_path / "x.gpl", "--swatch", tmp_path / "w.bmp")
    assert [_format(tmp_path / n) for n in ("v.webp", "r.jpg", "d.tiff", "s.jpg", "w.bmp")] == \
           ["WEBP", "JPEG", "TIFF", "JPEG", "BMP"]
    run = tmp_path / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "2", "-o", run)
    invoke(runner, "sample", run, "-n", "4", "-o", tmp_path / "sample.jpg")
    assert _format(tmp_path / "sample.jpg") == "JPEG"
    r = invoke(runner, "sample", run, "-n", "4", "-o", tmp_path / "sample.xyz", ok=False)
    assert r.exit_code != 0 and not (tmp_path / "sample.xyz").exists()


def test_a_suffix_that_names_no_picture_format_is_refused_before_any_work(runner, tmp_path, emoji_dir,
                                                                          one_token_file, tiny_cache):
    picture = emoji_dir / "a" / "e001.png"
    formats = ".webp, .gif, .bmp, .tif, .tiff, .tga, .jpg, .jpeg, .ppm, .pnm"
    for name, why in (("x.xyz", ".xyz is not a picture format artforge writes"),
                      ("x", "no suffix to tell the picture format")):
        out = tmp_path / name
        for args in (["decode", one_token_file / "one.npz", "-o", out],
                     ["decode", one_token_file / "many.npz", "-o", out],
                     ["render", one_token_file / "one.npz", "-o", out],
                     ["preview", picture, "-c", "hsv322", "-o", out],
                     ["data", "preview", tiny_cache, "-o", out],
                     ["palette", "show", "pico8", "-o", out]):
            r = invoke(runner, *args, ok=False)
            assert r.exit_code == 1 and r.output == f"Error: {out}: {why}; name it .png (or {formats})\n", \
                (args, r.output)
            assert not out.exists()
        # convert's --png: refused before the -o file is written
        r = invoke(runner, "convert", picture, "-c", "palette:pico8", "-o", tmp_path / "c.png", "--png", out,
                   ok=False)
        assert r.exit_code == 1 and r.output == f"Error: {out}: {why}; name it .png (or {formats})\n"
        assert not out.exists() and not (tmp_path / "c.png").exists()
    r = invoke(runner, "convert", picture, "-c", "palette:pico8", "-o", tmp_path / "c.xyz", ok=False)
    assert r.exit_code == 1 and "no file format of its own" in r.output and not (tmp_path / "c.xyz").exists()
    r = invoke(runner, "palette", "extract", picture, "-n", "4", "-o", tmp_path / "x.gpl", "--swatch",
               tmp_path / "w.xyz", ok=False)
    assert r.exit_code == 1 and not (tmp_path / "x.gpl").exists() and not (tmp_path / "w.xyz").exists()


def test_save_png_and_save_grid_keep_writing_png_under_any_other_name(tmp_path):
    """save_png and save_grid are what third-party plugins call: a name without a picture suffix (a
    temporary file, 'thumb') was written as PNG before pictures followed their suffix, and must not be
    refused now, after the plugin's work."""
    from artforge.grid import save_grid
    from artforge.imageio import save_png

    img = np.zeros((3, 2, 4), np.uint8)
    img[..., 3] = 255
    for name, fmt in (("thumb", "PNG"), ("x.dat", "PNG"), ("x.PNG", "PNG"), ("x.jpg", "JPEG")):
        assert save_png(img, tmp_path / name) == tmp_path / name
        assert _format(tmp_path / name) == fmt, name
        assert save_grid(img[None].repeat(2, 0), tmp_path / f"grid-{name}") == tmp_path / f"grid-{name}"
        assert _format(tmp_path / f"grid-{name}") == fmt, name


@pytest.mark.parametrize("suffix", [".bmp", ".jpg", ".ppm"])
def test_formats_without_transparency_lay_it_on_white(runner, tmp_path, suffix):
    """A transparent background is laid on white in every format that cannot hold it: BMP showed the
    colour hidden under it (black for a converted picture), unlike JPEG and PPM."""
    img = np.zeros((8, 8, 4), np.uint8)
    img[2:6, 2:6] = (255, 0, 77, 255)
    Image.fromarray(img, "RGBA").save(tmp_path / "t.png")
    r = invoke(runner, "convert", tmp_path / "t.png", "-c", "palette:pico8", "-o", tmp_path / f"c{suffix}")
    assert "no transparency (laid on white)" in r.output
    with Image.open(tmp_path / f"c{suffix}") as im:
        back = np.asarray(im.convert("RGB")).astype(int)
    assert (back[0, 0] >= 245).all() and abs(back[3, 3] - (255, 0, 77)).max() <= 8, (back[0, 0], back[3, 3])
