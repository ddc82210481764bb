"""Reading pictures as a viewer shows them: EXIF orientation, 16-bit and float greys, key-colour
transparency, extreme aspect ratios."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
from PIL import Image

from artforge.imageio import fit_square, load_image

from conftest import invoke


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways (orientation 6: turn 90 degrees clockwise to view) is read upright."""
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16] = (255, 0, 0)  # red on the stored left = the viewed top
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "turned.jpg")
    assert img.shape == (32, 16, 4)
    assert img[2, 8, 0] > 200 and img[2, 8, 2] < 60  # red at the top
    assert img[-3, 8, 2] > 200 and img[-3, 8, 0] < 60  # blue at the bottom


def test_16_bit_grey_is_scaled_the_same_whatever_its_values(tmp_path):
    """A dark 16-bit picture stays dark in PGM and PNG alike, with or without one bright pixel."""
    dark = np.full((4, 4), 200, np.uint16)
    bright = dark.copy()
    bright[0, 0] = 65535
    for name, values in (("dark", dark), ("bright", bright)):
        header = b"P5 4 4 65535\n"
        (tmp_path / f"{name}.pgm").write_bytes(header + values.astype(">u2").tobytes())
        Image.fromarray(values).save(tmp_path / f"{name}.png")
    for name in ("dark.pgm", "dark.png", "bright.pgm", "bright.png"):
        img = load_image(tmp_path / name)
        assert img[1, 1, 0] == 1, (name, img[1, 1])  # 200 / 65535 of white
    assert load_image(tmp_path / "bright.pgm")[0, 0, 0] == 255


def test_16_bit_grey_keeps_its_transparent_key_colour(tmp_path):
    values = np.array([[0, 7, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "key.png", transparency=7)
    img = load_image(tmp_path / "key.png")
    assert img[0, :, 3].tolist() == [255, 0, 255]


def test_float_images_are_on_a_0_to_1_scale_like_float_npz(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / "f.tif")
    assert load_image(tmp_path / "f.tif")[0, :, 0].tolist() == [0, 128, 255]



def test_an_npz_array_is_read_on_one_scale_for_all_its_images(runner, tmp_path):
    """A float image whose brightest value overshoots 1 by a rounding error was read on the 0-255 scale
    (the scale was chosen image by image): black, silently. Integers beyond 0-255 were cut at 255."""
    import h5py

    rng = np.random.default_rng(0)
    pictures = rng.integers(10, 240, (3, 8, 8, 4)).astype(np.uint8)
    pictures[..., 3] = 255
    floats = pictures / np.float32(255)
    floats[1, 0, 0, 0] = 1.000001  # float resampling gives such values
    want = pictures.copy()
    want[1, 0, 0, 0] = 255
    tokens = {}
    for name, images in (("floats", floats), ("floats255", pictures.astype(np.float32)), ("uint8", want),
                         ("int64", pictures.astype(np.int64))):
        np.savez(tmp_path / f"{name}.npz", images=images)
        invoke(runner, "data", "build", tmp_path / f"{name}.npz", "-c", "hsv544", "-o", tmp_path / f"{name}.h5",
               "-j", "1", "-q")
        with h5py.File(tmp_path / f"{name}.h5") as f:
            tokens[name] = f["tokens"][:]
    assert np.array_equal(tokens["floats"], tokens["uint8"])
    assert np.array_equal(tokens["floats255"][[0, 2]], tokens["uint8"][[0, 2]])
    assert np.array_equal(tokens["int64"][[0, 2]], tokens["uint8"][[0, 2]])
    np.savez(tmp_path / "wide.npz", images=pictures.astype(np.uint16) * 257)  # 16-bit values
    r = invoke(runner, "data", "build", tmp_path / "wide.npz", "-c", "hsv544", "-o", tmp_path / "w.h5", ok=False)
    assert f"{tmp_path / 'wide.npz'}: 'images' holds values 2570..65535; integer images are on the 0-255" in r.output

def test_a_long_strip_fits_without_a_canvas_of_its_length_squared():
    strip = np.zeros((1, 3000, 4), np.uint8)
    strip[..., :3], strip[..., 3] = 200, 255
    tracemalloc.start()
    out = fit_square(strip, 16, "lanczos")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000, peak  # a 3000 x 3000 RGBA canvas would be 36 MB
    assert out.shape == (16, 16, 4)
    assert out[7, :, 3].min() == 255 and out[0, :, 3].max() == 0  # one centred opaque row


def test_a_strip_encodes_to_the_asked_size(runner, tmp_path):
    Image.fromarray(np.full((1, 5000, 3), 90, np.uint8)).save(tmp_path / "strip.png")
    r = invoke(runner, "encode", "-c", "hsv544", tmp_path / "strip.png", "--size", "16", "-o", tmp_path / "s.npz")
    assert "16x16" in r.output


def _folder_tree(root, picture: bytes):
    """root/a.png, root/sub/b.png, root/.thumbs/c.png (hidden), root/link -> ../shared (d.png),
    root/sub/loop -> root (a symlink loop)."""
    import os

    (root / "sub").mkdir(parents=True)
    (root / ".thumbs").mkdir()
    (root.parent / "shared").mkdir()
    for f in (root / "a.png", root / "sub" / "b.png", root / ".thumbs" / "c.png", root.parent / "shared" / "d.png"):
        f.write_bytes(picture)
    os.symlink(root.parent / "shared", root / "link")
    os.symlink(root, root / "sub" / "loop")


def test_every_command_walks_a_folder_the_same_way(runner, emoji_dir, tmp_path):
    """Hidden folders are left out and symlinked folders followed (once: no loops), by encode and
    data build alike."""
    import h5py

    _folder_tree(tmp_path / "in", (emoji_dir / "a" / "e001.png").read_bytes())
    r = invoke(runner, "encode", "-c", "hsv322", tmp_path / "in", "-o", tmp_path / "t.npz")
    names = sorted(np.load(tmp_path / "t.npz")["names"].tolist())
    assert names == ["a.png", "link/d.png", "sub/b.png"], r.output
    invoke(runner, "data", "build", tmp_path / "in", "-c", "hsv322", "-o", tmp_path / "t.h5", "-q")
    with h5py.File(tmp_path / "t.h5") as f:
        assert sorted(f["names"][:].astype(str).tolist()) == names


def test_names_that_are_not_utf8_are_escaped_not_fatal(runner, emoji_dir, tmp_path):
    import os

    import h5py

    (tmp_path / "in").mkdir()
    picture = (emoji_dir / "a" / "e001.png").read_bytes()
    (tmp_path / "in" / "ok.png").write_bytes(picture)
    with open(os.path.join(os.fsencode(tmp_path / "in"), b"caf\xe9.png"), "wb") as f:
        f.write(picture)
    r = invoke(runner, "data", "build", tmp_path / "in", "-c", "hsv322", "-o", tmp_path / "t.h5")
    assert "2 items" in r.output
    with h5py.File(tmp_path / "t.h5") as f:
        assert sorted(f["names"][:].astype(str).tolist()) == ["caf\\xe9.png", "ok.png"]


def test_an_unreadable_subfolder_is_a_skipped_item(runner, emoji_dir, tmp_path):
    import os

    import pytest

    if os.geteuid() == 0:
        pytest.skip("root reads any folder")
    (tmp_path / "in" / "locked").mkdir(parents=True)
    (tmp_path / "in" / "a.png").write_bytes((emoji_dir / "a" / "e001.png").read_bytes())
    (tmp_path / "in" / "locked").chmod(0)
    try:
        r = invoke(runner, "encode", "-c", "hsv322", tmp_path / "in", "-o", tmp_path / "t.npz")
    finally:
        (tmp_path / "in" / "locked").chmod(0o755)
    assert "skipped" in r.output and "locked" in r.output and "permission denied" in r.output


def test_a_sheet_of_opaque_pictures_needs_little_more_than_the_sheet():
    """Cells are composited one at a time, opaque ones only sliced: no float copy of every picture."""
    from artforge.grid import make_grid

    pictures = np.full((4, 512, 512, 4), 255, np.uint8)
    pictures[1, :10, :10, 3] = 128  # one translucent corner: blended exactly over white
    pictures[1, :10, :10, :3] = 0
    tracemalloc.start()
    sheet = make_grid(pictures, ncols=2, scale=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < sheet.nbytes + 6_000_000, (peak, sheet.nbytes)  # the float32 stack alone was 12.6 MB
    assert sheet[2, 516].tolist() == [127, 127, 127]  # round(255 * 127/255)


def test_a_bad_file_whose_name_holds_a_line_break_is_reported_on_one_line(runner, emoji_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes((emoji_dir / "a" / "e001.png").read_bytes())
    (tmp_path / "in" / "bad\nname.png").write_bytes(b"not a picture")
    r = invoke(runner, "encode", "-c", "hsv322", tmp_path / "in", "-o", tmp_path / "t.npz")
    skipped = [line for line in r.output.splitlines() if "skipped" in line and "name.png" in line]
    assert len(skipped) == 1 and "bad\\nname.png: not an image" in skipped[0], r.output


def test_a_folder_reached_twice_is_named_the_same_whatever_the_listing_order(tmp_path, monkeypatch):
    """real/ and link -> real/ hold the same files, listed once under the first way in; which way
    that is must not follow the file system's listing order (a hash order on ext4)."""
    import os

    from artforge.imageio import folder_files

    (tmp_path / "root" / "real").mkdir(parents=True)
    (tmp_path / "root" / "real" / "x.png").write_bytes(b"")
    os.symlink("real", tmp_path / "root" / "link")
    walk = os.walk
    found = []
    for flip in (False, True):
        def listed(*args, _flip=flip, **kwargs):
            for root, dirs, files in walk(*args, **kwargs):
                dirs.sort(reverse=_flip)  # the same list object: what the caller keeps is walked
                yield root, dirs, files

        monkeypatch.setattr(os, "walk", listed)
        found.append([p.relative_to(tmp_path / "root").as_posix() for p in folder_files(tmp_path / "root", {".png"})])
    assert found[0] == found[1] == ["link/x.png"], found


def test_data_build_info_and_convert_report_a_name_with_a_line_break_on_one_line(runner, emoji_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes((emoji_dir / "a" / "e001.png").read_bytes())
    (src / "bad\nname.png").write_bytes(b"not a picture")
    r = invoke(runner, "data", "build", src, "-c", "hsv322", "-o", tmp_path / "c.h5", "-q")
    info = invoke(runner, "data", "info", tmp_path / "c.h5")
    # convert skips a picture the codec cannot take (palette:auto of a fully transparent one) by name
    Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(src / "clear\nname.png")
    conv = invoke(runner, "convert", src / "a.png", src / "clear\nname.png", "-c", "palette:auto/4",
                  "-o", tmp_path / "out")
    for output, name in ((r.output, "bad"), (info.output, "bad"), (conv.output, "clear")):
        lines = [line for line in output.splitlines() if "name.png" in line]
        assert len(lines) == 1 and f"{name}\\nname.png" in lines[0], output


def test_a_tiff_pillow_logs_about_is_reported_in_one_line(tmp_path):
    """Found by fuzzing: Pillow logs "More samples per pixel than can be decoded" before it refuses such a
    TIFF, which Python printed as a stray stderr line (a subprocess: pytest's own log handler hides it)."""
    import subprocess

    from conftest import ARTFORGE, subprocess_env

    buf = io.BytesIO()
    Image.new("RGBA", (4, 4)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    entry = data.index(bytes([0x15, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00]))  # SamplesPerPixel, 1 SHORT
    data[entry + 8] = 9  # more than any mode Pillow decodes
    (tmp_path / "bad.tif").write_bytes(data)
    r = subprocess.run([*ARTFORGE, "encode", "-c", "hsv544", "-o", tmp_path / "t.npz", tmp_path / "bad.tif"],
                       capture_output=True, text=True, env=subprocess_env(), timeout=120)
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and all("bad.tif" in line for line in lines), r.stderr
