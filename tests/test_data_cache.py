"""The HDF5 token cache: layout, fingerprints, atomic builds, labels, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from artforge.data.cache import SCHEMA, build_cache, cache_info, verify_cache
from artforge.errors import ArtforgeError, BadInput

from conftest import invoke, subprocess_env


def build(*args, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("workers", 1)
    return build_cache(*args, **kw)


def test_layout_dtype_chunks_and_attrs(emoji_dir, tmp_path):
    r = build(str(emoji_dir), "hsv544", tmp_path / "c.h5")
    assert r.status == "built" and r.n_items == 24
    with h5py.File(tmp_path / "c.h5") as f:
        tok = f["tokens"]
        assert tok.shape == (24, 32, 32) and tok.dtype == np.uint16
        assert tok.compression == "gzip" and tok.shuffle
        chunk_bytes = np.prod(tok.chunks) * tok.dtype.itemsize
        assert tok.chunks[1:] == (32, 32) and 10 * 1024 <= chunk_bytes <= 1024 * 1024
        assert f["names"].shape == (24,)
        a = f.attrs
        assert a["schema"] == SCHEMA and json.loads(a["codec"])["spec"] == "hsv544"
        assert a["n_items"] == 24 and a["n_skipped"] == 0 and a["fingerprint"]
    build(str(emoji_dir), "hsv322", tmp_path / "d.h5")  # 2^7 + 1 token values
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["tokens"].dtype == np.uint8


def test_tokens_equal_direct_encoding(emoji_dir, tmp_path):
    from artforge.codecs import get_codec

    build(str(emoji_dir), "hsv433", tmp_path / "c.h5", workers=2)
    with h5py.File(tmp_path / "c.h5") as f:
        names = f["names"][:].astype(str).tolist()
        tokens = f["tokens"][:]
    c = get_codec("hsv433")
    for i in (0, 5, 23):
        img = np.array(Image.open(emoji_dir / names[i]).convert("RGBA"))
        assert np.array_equal(tokens[i], c.encode(img[None])[0])


def test_sources_glob_npz_builtin(emoji_dir, emoji, tmp_path):
    r = build(str(emoji_dir / "*" / "e00*.png"), "hsv544", tmp_path / "g.h5")
    assert r.n_items == 10
    np.savez(tmp_path / "x.npz", images=emoji[:7])
    assert build(str(tmp_path / "x.npz"), "hsv544", tmp_path / "n.h5").n_items == 7
    grey = np.random.default_rng(0).integers(0, 256, (5, 16, 16), dtype=np.uint8)  # (N, H, W) arrays work
    np.savez(tmp_path / "g.npz", images=grey)
    assert build(str(tmp_path / "g.npz"), "hsv544", tmp_path / "gr.h5").n_items == 5
    assert build("builtin:emoji32", "hsv322", tmp_path / "b.h5").n_items == 512


def test_same_source_is_a_no_op_and_changes_rebuild(emoji_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in sorted((emoji_dir / "a").glob("*.png"))[:5]:
        (src / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "c.h5"
    assert build(str(src), "hsv544", out).status == "built"
    mtime = out.stat().st_mtime_ns
    again = build(str(src), "hsv544", out)
    assert again.status == "up-to-date" and out.stat().st_mtime_ns == mtime
    assert build(str(src), "hsv433", out).status == "built"  # codec changed
    assert "codec" in build(str(src), "hsv544", out).reason
    (src / "new.png").write_bytes((emoji_dir / "b" / "e000.png").read_bytes())
    r = build(str(src), "hsv544", out)
    assert r.status == "built" and r.n_items == 6 and "source" in r.reason
    assert build(str(src), "hsv544", out, force=True).status == "built"
    assert build(str(src), "hsv544", out, size=16).status == "built"


def test_a_cache_read_by_another_source_reader_is_rebuilt(emoji_dir, tmp_path, runner, monkeypatch):
    """The files alone do not say what a cache holds: how artforge reads them does too (an .npz's bytes
    names, a .jsonl's null names). A cache built by another reader version is rebuilt, saying why."""
    import artforge.data.sources as sources

    out = tmp_path / "c.h5"
    args = ("data", "build", emoji_dir / "a", "-c", "hsv544", "-o", out, "-q", "-j", "1")
    invoke(runner, *args)
    assert "is up to date" in invoke(runner, *args).output  # the same reader: nothing to do
    now = sources.READER_VERSION
    monkeypatch.setattr(sources, "READER_VERSION", now + 1)
    r = build(str(emoji_dir / "a"), "hsv544", out)
    assert r.status == "built" and r.reason == f"changed: how sources are read (source reader version {now} -> " \
                                               f"version {now + 1})"
    assert build(str(emoji_dir / "a"), "hsv544", out).status == "up-to-date"
    monkeypatch.setattr(sources, "READER_VERSION", now)
    r = invoke(runner, *args)
    assert "built" in r.output and f"(source reader version {now + 1} -> version {now})" in r.output
    with h5py.File(out, "r+") as f:  # a cache from before reader versions: its parts have none
        parts = json.loads(f.attrs["fingerprint_parts"])
        del parts["reader"]
        f.attrs["fingerprint_parts"] = json.dumps(parts, sort_keys=True)
        f.attrs["fingerprint"] = sources.fingerprint(parts)
    r = build(str(emoji_dir / "a"), "hsv544", out)
    assert r.status == "built" and "(source reader of an older artforge -> version" in r.reason


def test_cli_build_info_verify_preview(runner, emoji_dir, tmp_path):
    out = tmp_path / "c.h5"
    r = invoke(runner, "data", "build", emoji_dir, "-c", "hsv544", "-o", out, "-q", "-j", "2")
    assert "built" in r.output and "24 items" in r.output
    assert "up to date" in invoke(runner, "data", "build", emoji_dir, "-c", "hsv544", "-o", out, "-q").output
    info = json.loads(invoke(runner, "data", "info", out, "--json").stdout)
    assert info["items"] == 24 and info["compression_ratio"] > 1 and info["dtype"] == "uint16"
    assert "ratio" in invoke(runner, "data", "info", out).output
    assert "ok" in invoke(runner, "data", "verify", out).output
    invoke(runner, "data", "preview", out, "-n", "9", "-o", tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").size[0] > 3 * 32


def test_names_beyond_ascii_are_read_back(runner, emoji_dir, tmp_path):
    """numpy's astype(str) decodes bytes as ASCII: one picture named café.png made the cache it was
    built into "damaged" for info, verify, train and the splits."""
    from artforge.data.cache import cache_names

    from conftest import TINY_HSV

    src = tmp_path / "src"
    src.mkdir()
    pictures = sorted((emoji_dir / "a").glob("*.png"))[:3]
    wanted = ["café", "naïve 日本", "plain"]
    for picture, name in zip(pictures, wanted, strict=True):
        (src / f"{name}.png").write_bytes(picture.read_bytes())
    out = tmp_path / "c.h5"
    invoke(runner, "data", "build", src, "-c", "hsv322", "--size", "8", "-o", out, "-q")
    assert sorted(cache_names(out)) == sorted(f"{n}.png" for n in wanted)
    assert "ok" in invoke(runner, "data", "verify", out).output
    assert json.loads(invoke(runner, "data", "info", out, "--json").stdout)["items"] == 3
    invoke(runner, "train", *TINY_HSV, "--data", out, "--steps", "1", "--batch-size", "2", "--set", "val_fraction=0",
           "-o", tmp_path / "run")
    # an .npz label column of UTF-8 bytes (it was an internal error: UnicodeDecodeError)
    images = np.stack([np.asarray(Image.open(p).convert("RGBA").resize((8, 8))) for p in pictures[:2]])
    np.savez(tmp_path / "l.npz", images=images, names=np.array(["a", "b"]), kind=np.array(["café".encode(), b"x"]))
    invoke(runner, "data", "build", tmp_path / "l.npz", "-c", "hsv322", "--labels", "npz:kind", "-o", tmp_path / "l.h5")
    assert "kind=café" in invoke(runner, "data", "info", tmp_path / "l.h5").output


def test_names_that_are_not_utf8_are_stored(runner, emoji_dir, tmp_path):
    """Linux file names may hold any bytes; Python hands those that are not UTF-8 over as surrogate
    escapes, which HDF5's UTF-8 strings refuse: a folder named b'bad\\xff' (or a picture in it) made
    'data build' an internal error (UnicodeEncodeError). The bytes are stored as \\xNN escapes."""
    from artforge.data.cache import cache_names

    src = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff"))
    src.mkdir()
    picture = sorted((emoji_dir / "a").glob("*.png"))[0]
    (src / os.fsdecode(b"\xe9t\xe9.png")).write_bytes(picture.read_bytes())
    (src / os.fsdecode(b"\xfe.png")).write_bytes(b"not a picture")
    out = tmp_path / "c.h5"
    invoke(runner, "data", "build", src, "-c", "hsv322", "--size", "8", "-o", out, "-q")
    assert cache_names(out) == ["\\xe9t\\xe9.png"]
    info = json.loads(invoke(runner, "data", "info", out, "--json").stdout)
    assert info["items"] == 1 and info["skipped_items"][0][0] == "\\xfe.png"
    assert "ok" in invoke(runner, "data", "verify", out).output
    assert "up to date" in invoke(runner, "data", "build", src, "-c", "hsv322", "--size", "8", "-o", out).output


def test_preview_zoom_keeps_the_grid_under_16_mpx(runner, tmp_path):
    """1,700 16-px items would be 16.6 Mpx at the usual 6x; the automatic zoom drops to 5x."""
    np.savez(tmp_path / "dots.npz", images=np.full((1700, 16, 16, 3), 128, np.uint8))
    invoke(runner, "data", "build", tmp_path / "dots.npz", "-c", "hsv322", "-o", tmp_path / "dots.h5")
    invoke(runner, "data", "preview", tmp_path / "dots.h5", "-n", "1700", "-o", tmp_path / "p.png")
    w, h = Image.open(tmp_path / "p.png").size
    assert (w, h) == (42 * (80 + 2) + 2, 41 * (80 + 2) + 2) and w * h <= 16_000_000  # 42 columns, 41 rows


def test_verify_finds_corruption(tmp_path, emoji_dir, runner):
    out = tmp_path / "c.h5"
    build(str(emoji_dir), "hsv544", out)
    with h5py.File(out, "a") as f:
        f["tokens"][0, 0, 0] = 60000  # beyond the vocabulary
        f.attrs["n_items"] = 99
    problems = verify_cache(out)
    assert any("vocab" in p for p in problems) and any("n_items" in p for p in problems)
    assert "problem" in invoke(runner, "data", "verify", out, ok=False).output


def test_old_schema_and_foreign_files_are_clear_errors(tmp_path, emoji_dir, runner):
    out = tmp_path / "c.h5"
    build(str(emoji_dir), "hsv544", out)
    with h5py.File(out, "a") as f:
        f.attrs["schema"] = 0
    r = invoke(runner, "data", "info", out, ok=False)
    assert "schema 0" in r.output and "rebuild" in r.output
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    assert "not an artforge token cache" in invoke(runner, "data", "info", tmp_path / "other.h5", ok=False).output
    (tmp_path / "junk.h5").write_text("junk")
    assert "not an HDF5 cache" in invoke(runner, "data", "info", tmp_path / "junk.h5", ok=False).output
    # a stale cache from an older schema is rebuilt, not reused
    assert build(str(emoji_dir), "hsv544", out).status == "built"



def test_a_build_into_a_log_writes_no_blank_line(emoji_dir, tmp_path):
    """Without a terminal the progress bar shows nothing, but rich ended it with a blank line: every build
    run by a job scheduler or piped into a log wrote an empty line before its report or its one-line
    error."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.png").write_bytes((emoji_dir / "a" / "e001.png").read_bytes())
    (src / "zero.png").write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "artforge", "data", "build", src, "-c", "hsv322", "-o",
                           tmp_path / "c.h5", "-j", "1"], capture_output=True, text=True, env=subprocess_env(),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "skipped zero.png: empty file (0 bytes)\n"
    done = subprocess.run([sys.executable, "-m", "artforge", "data", "build", src / "zero.png", "-c", "hsv322",
                           "-o", tmp_path / "d.h5"], capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_full_disk_is_one_line_and_keeps_the_previous_cache(emoji, tmp_path):
    """A write that fails part way (the disk full; here the file-size limit, EFBIG) left HDF5 unable to
    close the partial file: the error ran over two lines (HDF5's message names the time and buffer) and
    the process then died of a segmentation fault as Python exited."""
    import resource

    np.savez(tmp_path / "small.npz", images=emoji[:4])
    noise = np.random.default_rng(0).integers(0, 256, (400, 32, 32, 4), dtype=np.uint8)
    np.savez(tmp_path / "noise.npz", images=noise)  # hsv544 tokens of noise: ~800 KB, barely compressible
    out = tmp_path / "c.h5"
    build_cache(str(tmp_path / "small.npz"), "hsv544", out, workers=1, progress=False)
    before = out.read_bytes()

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (256_000, 256_000))

    done = subprocess.run([sys.executable, "-m", "artforge", "data", "build", tmp_path / "noise.npz", "-c", "hsv544",
                           "-o", out, "-j", "1"], preexec_fn=limit_file_size, capture_output=True, text=True,
                          env=subprocess_env(), timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert done.stderr == f"Error: {out}: cannot write (File too large)\n"
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []

def test_bad_items_are_skipped_with_reasons(emoji_dir, tmp_path, runner):
    src = tmp_path / "bad"
    src.mkdir()
    good = (emoji_dir / "a" / "e001.png").read_bytes()
    (src / "good.png").write_bytes(good)
    (src / "trunc.png").write_bytes(good[: len(good) // 2])
    (src / "zero.png").write_bytes(b"")
    (src / "text.png").write_text("hello")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(src / "big.png")  # another size: skipped without --size
    Image.new("1", (14000, 14000)).save(src / "bomb.png")  # 196 Mpx > Pillow's guard
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("CMYK", (32, 32)).save(src / "cmyk.jpg")
    Image.new("LA", (32, 32)).save(src / "la.png")
    Image.fromarray(np.full((32, 32), 1000, np.uint16)).save(src / "deep.png")
    unreadable = src / "secret.png"
    unreadable.write_bytes(good)
    unreadable.chmod(0)
    r = build(str(src), "hsv544", tmp_path / "c.h5")
    reasons = dict(r.skipped)
    assert "empty file" in reasons["zero.png"]
    assert "not an image" in reasons["text.png"]
    assert "unreadable image" in reasons["trunc.png"]
    assert "decompression-bomb" in reasons["bomb.png"]
    assert "--size" in reasons["big.png"]
    if os.geteuid() != 0:  # root reads anything, so only other users see this one
        assert "permission denied" in reasons["secret.png"]
    for kept in ("good.png", "anim.gif", "cmyk.jpg", "la.png", "deep.png"):
        assert kept not in reasons
    info = cache_info(tmp_path / "c.h5")
    assert info["skipped"] == len(r.skipped) and info["items"] == r.n_items
    shown = invoke(runner, "data", "info", tmp_path / "c.h5").output
    assert "zero.png" in shown and "empty file" in shown


def test_duplicate_names_are_skipped(emoji, tmp_path):
    np.savez(tmp_path / "d.npz", images=emoji[:4], names=np.array(["a", "b", "a", "c"]))
    r = build(str(tmp_path / "d.npz"), "hsv544", tmp_path / "c.h5")
    assert r.n_items == 3 and r.skipped == [("a", "duplicate name (the first one is kept)")]


def test_names_a_cache_cannot_store_are_escaped(emoji, tmp_path):
    """Found by fuzzing .npz and .jsonl sources: a name holding NUL (HDF5 strings cannot) or a lone
    surrogate (not UTF-8) ended the build as an internal error; they are escaped as in file names."""
    from artforge.data.cache import cache_names

    np.savez(tmp_path / "d.npz", images=emoji[:3], names=np.array(["a\0b", "\ud800", "c"]))
    build(str(tmp_path / "d.npz"), "hsv544", tmp_path / "c.h5")
    assert sorted(cache_names(tmp_path / "c.h5")) == ["\\ud800", "a\\x00b", "c"]
    (tmp_path / "t.jsonl").write_text('{"name": "a\\u0000b", "text": "hi"}\n{"name": "\\ud800", "text": "ho"}\n')
    build(str(tmp_path / "t.jsonl"), "ascii:8x4", tmp_path / "t.h5")
    assert sorted(cache_names(tmp_path / "t.h5")) == ["\\ud800", "a\\x00b"]


def test_npz_names_and_images_of_the_wrong_kind_are_refused(emoji, tmp_path):
    """Found by fuzzing .npz sources: 2-D or boolean 'names' were taken as "['a' 'b']" and "True" (then
    skipped as duplicates), and a member that is no .npy was miscounted or an AttributeError's text."""
    import zipfile

    cases = {"rows.npz": (np.array([["a", "b"]] * 3), "got shape (3, 2) of <U1"),
             "flags.npz": (np.array([True, False, True]), "got shape (3,) of bool")}
    for name, (names, message) in cases.items():
        np.savez(tmp_path / name, images=emoji[:3], names=names)
        with pytest.raises(BadInput, match=rf"{name}: 'names' must be a 1-D array of names .*{re.escape(message)}"):
            build(str(tmp_path / name), "hsv544", tmp_path / "c.h5")
    np.savez(tmp_path / "t.npz", images=emoji[:3])
    with zipfile.ZipFile(tmp_path / "t.npz", "a") as z:
        z.writestr("names.npy", b"hello")
    with pytest.raises(BadInput, match="t.npz: 'names' is not a numpy array"):
        build(str(tmp_path / "t.npz"), "hsv544", tmp_path / "c.h5")
    with zipfile.ZipFile(tmp_path / "i.npz", "w") as z:
        z.writestr("images.npy", b"hello")
    with pytest.raises(BadInput, match="i.npz: 'images' is not a numpy array"):
        build(str(tmp_path / "i.npz"), "hsv544", tmp_path / "c.h5")


def test_a_file_named_npz_that_is_no_zip_is_refused_plainly(emoji, tmp_path):
    """Found by fuzzing .npz sources: np.load took text for pickled data ("If you trust the file you can
    load it unsafely ... allow_pickle") and a lone .npy for an archive without a context manager."""
    np.save(tmp_path / "one.npy", emoji[:2])
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    whole = tmp_path / "whole.npz"
    np.savez(whole, images=emoji[:2])
    (tmp_path / "cut.npz").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for name, message in {"one.npz": "is one .npy array, not an .npz archive",
                          "text.npz": "not an .npz (not a zip archive, or one cut short)",
                          "cut.npz": "not an .npz (not a zip archive, or one cut short)"}.items():
        with pytest.raises(BadInput, match=re.escape(f"{name}: {message}")):
            build(str(tmp_path / name), "hsv544", tmp_path / "c.h5")


def test_missing_output_folder_and_empty_source(tmp_path, emoji_dir):
    with pytest.raises(ArtforgeError, match="does not exist"):
        build(str(emoji_dir), "hsv544", tmp_path / "no" / "c.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtforgeError, match="no items"):
        build(str(tmp_path / "empty"), "hsv544", tmp_path / "c.h5")
    with pytest.raises(BadInput, match="no such file"):
        build(str(tmp_path / "nothing"), "hsv544", tmp_path / "c.h5")


# -- labels --------------------------------------------------------------------------------------
@pytest.fixture
def punks(tmp_path, emoji):
    d = tmp_path / "punks"
    d.mkdir()
    for i in range(6):
        Image.fromarray(emoji[i], "RGBA").save(d / f"punk{i:04d}.png")
    labels = {str(i): {"type": "female" if i % 2 else "male", "earring": i % 3 == 0,
                       "accessories": ["cap"] if i < 2 else []} for i in range(5)}  # punk0005 has none
    labels["99"] = {"type": "alien", "earring": 0, "accessories": []}  # an image that doesn't exist
    (tmp_path / "punks.json").write_text(json.dumps(labels))
    return d


def test_cryptopunks_style_json_labels(punks, tmp_path):
    r = build(str(punks), "hsv544", tmp_path / "c.h5", labels=str(tmp_path / "punks.json"))
    assert r.n_items == 5 and dict(r.skipped)["punk0005.png"] == "no labels for this image"
    info = cache_info(tmp_path / "c.h5")
    cols = info["labels"]["columns"]
    assert cols == ["earring", "accessories=cap", "type=alien", "type=female", "type=male"]
    assert info["labels_without_image"] == 1
    with h5py.File(tmp_path / "c.h5") as f:
        lab = f["labels"][:]
        names = f["names"][:].astype(str).tolist()
    row = lab[names.index("punk0003.png")]
    assert row.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_csv_and_dirs_and_npz_labels(emoji_dir, emoji, tmp_path):
    rows = ["name,kind,score"] + [f"{p.name},{'x' if i % 2 else 'y'},{i}"
                                   for i, p in enumerate(sorted((emoji_dir / "a").glob("*.png")))]
    (tmp_path / "l.csv").write_text("\n".join(rows))
    r = build(str(emoji_dir / "a"), "hsv544", tmp_path / "c.h5", labels=str(tmp_path / "l.csv"))
    assert r.n_items == 12 and cache_info(tmp_path / "c.h5")["labels"]["columns"] == ["score", "kind=x", "kind=y"]
    build(str(emoji_dir), "hsv544", tmp_path / "d.h5", labels="dirs")
    freq = cache_info(tmp_path / "d.h5")["labels"]["frequency"]
    assert freq == {"dir=a": 0.5, "dir=b": 0.5}
    np.savez(tmp_path / "k.npz", images=emoji[:6], kinds=np.array(["s", "z", "s", "f", "s", "z"]))
    build(str(tmp_path / "k.npz"), "hsv544", tmp_path / "e.h5", labels="npz:kinds")
    assert cache_info(tmp_path / "e.h5")["labels"]["columns"] == ["kinds=f", "kinds=s", "kinds=z"]


def test_labels_files_with_a_byte_order_mark(emoji, tmp_path):
    """Found by fuzzing labels files: a .json with a UTF-8 BOM was 'invalid JSON' though the same
    mark in a .csv was read."""
    np.savez(tmp_path / "e.npz", images=emoji[:2], names=np.array(["a", "b"]))
    (tmp_path / "l.json").write_text("\ufeff" + json.dumps({"a": {"w": 1}, "b": {"w": 0}}), encoding="utf-8")
    (tmp_path / "l.csv").write_text("\ufeffname,w\r\na,1\r\nb,0\r\n", encoding="utf-8")
    for name in ("l.json", "l.csv"):
        r = build(str(tmp_path / "e.npz"), "hsv544", tmp_path / "c.h5", labels=str(tmp_path / name), force=True)
        assert r.n_items == 2 and cache_info(tmp_path / "c.h5")["labels"]["columns"] == ["w"]


def test_csv_labels_with_line_breaks_inside_quoted_fields(emoji, tmp_path):
    """The .csv was split into lines before it was parsed: a quoted field holding a line break (or
    U+2028, which str.splitlines() also splits at) cut its record in two, and its image went unlabelled."""
    np.savez(tmp_path / "e.npz", images=emoji[:2], names=np.array(["a", "b"]))
    (tmp_path / "l.csv").write_text('name,kind,w\na,"big\ncat",1\nb,small\u2028one,0\n', encoding="utf-8")
    r = build(str(tmp_path / "e.npz"), "hsv544", tmp_path / "c.h5", labels=str(tmp_path / "l.csv"))
    assert r.n_items == 2 and r.skipped == []
    assert cache_info(tmp_path / "c.h5")["labels"]["columns"] == ["w", "kind=big\ncat", "kind=small\u2028one"]
    (tmp_path / "bad.csv").write_text('name,kind\na,"big\ncat"\nb,x,y\n')  # messages name the line, not the record
    with pytest.raises(BadInput, match="line 4 has 3 fields"):
        build(str(tmp_path / "e.npz"), "hsv544", tmp_path / "d.h5", labels=str(tmp_path / "bad.csv"))


def test_json_labels_that_repeat_a_name_are_refused_as_csv_ones_are(emoji, tmp_path):
    """json keeps the last of a repeated key without a word: one image's labels were silently lost."""
    np.savez(tmp_path / "e.npz", images=emoji[:2], names=np.array(["a", "b"]))
    for text, says in (('{"a": {"w": 1}, "a": {"w": 0}, "b": {"w": 1}}', "repeats the key 'a' in one object"),
                       ('{"a": {"w": 1, "w": 0}, "b": {"w": 1}}', "repeats the key 'w' in one object"),
                       ('[{"name": "a", "w": 1}, {"name": "a", "w": 0}]', "item 1 repeats the name 'a'")):
        (tmp_path / "l.json").write_text(text)
        with pytest.raises(BadInput, match=says):
            build(str(tmp_path / "e.npz"), "hsv544", tmp_path / "c.h5", labels=str(tmp_path / "l.json"))


def test_bad_label_files(emoji_dir, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BadInput, match="bad.json: invalid JSON"):
        build(str(emoji_dir), "hsv544", tmp_path / "c.h5", labels=str(tmp_path / "bad.json"))
    (tmp_path / "short.csv").write_text("name,a\nx.png,1,2\n")
    with pytest.raises(BadInput, match="line 2 has 3 fields"):
        build(str(emoji_dir), "hsv544", tmp_path / "c.h5", labels=str(tmp_path / "short.csv"))
    with pytest.raises(BadInput, match="no such labels file"):
        build(str(emoji_dir), "hsv544", tmp_path / "c.h5", labels=str(tmp_path / "nope.json"))


# -- atomicity -----------------------------------------------------------------------------------
def test_sigkill_leaves_the_previous_cache_intact(tmp_path):
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (6000, 64, 64, 4), dtype=np.uint8)  # slow enough to kill midway
    np.savez(tmp_path / "big.npz", images=big[:200])
    out = tmp_path / "c.h5"
    build(str(tmp_path / "big.npz"), "hsv544", out)
    before = cache_info(out)
    np.savez(tmp_path / "big.npz", images=big)  # the source changes: the next build rebuilds
    proc = subprocess.Popen([sys.executable, "-m", "artforge", "data", "build", tmp_path / "big.npz", "-c", "hsv544",
                             "-o", out, "-j", "1", "-q"], env=subprocess_env())
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".c.h5.partial-*")):
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = list(tmp_path.glob(".c.h5.partial-*"))
    assert partial, "the killed build wrote somewhere other than a partial file"
    after = cache_info(out)
    assert after["fingerprint"] == before["fingerprint"] and after["items"] == 200
    assert verify_cache(out) == []
    # the next build cleans up the dead writer's partial file and is not fooled by it
    r = build(str(tmp_path / "big.npz"), "hsv544", out, workers=2)
    assert r.status == "built" and r.n_items == 6000
    assert not list(tmp_path.glob(".c.h5.partial-*"))


def test_build_does_not_hold_the_whole_source_in_memory(tmp_path):
    """Images are read and tokens written chunk by chunk: peak memory stays far below the data size."""
    rng = np.random.default_rng(1)
    src = tmp_path / "noise"
    src.mkdir()
    n = 3000
    tile = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    tile[..., 3] = 255
    for i in range(n):
        Image.fromarray(np.roll(tile, i, 0), "RGBA").save(src / f"{i:05d}.png", compress_level=0)
    code = (
        "import resource\n"
        "import numpy as np\n"
        "from artforge.codecs import get_codec\n"
        "from artforge.data.cache import build_cache\n"
        "get_codec('hsv544').encode(np.zeros((1, 1024, 1024, 4), np.uint8))  # build the codec tables first\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"build_cache({str(src)!r}, 'hsv544', {str(tmp_path / 'm.h5')!r}, workers=1, progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    grew_kib = int(out.stdout.split()[-1])
    whole_kib = n * 64 * 64 * (4 + 2) / 1024  # every image and every token array at once: ~70 MiB
    assert grew_kib < whole_kib / 3, (grew_kib, whole_kib)


def test_workers_build_the_same_cache(emoji_dir, tmp_path):
    build(str(emoji_dir), "hsv544", tmp_path / "one.h5", workers=1)
    build(str(emoji_dir), "hsv544", tmp_path / "two.h5", workers=2)
    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "two.h5") as b:
        assert np.array_equal(a["tokens"][:], b["tokens"][:])
        assert a["names"][:].tolist() == b["names"][:].tolist()


def test_path_objects_and_relative_names(emoji_dir, tmp_path):
    r = build(str(emoji_dir), "hsv544", Path(tmp_path) / "c.h5")
    with h5py.File(tmp_path / "c.h5") as f:
        assert sorted(f["names"][:].astype(str))[:2] == ["a/e001.png", "a/e003.png"]
    assert r.n_items == 24


def test_an_option_the_codec_cannot_apply_is_the_first_and_only_error(runner, tmp_path):
    """`--size` with a text codec was found item by item, so a .jsonl's bad lines were reported first
    ("every item was skipped; first: x.jsonl:2: not JSON"); it is refused before the source is read."""
    src = tmp_path / "x.jsonl"
    src.write_text('{"text": "ab\\ncd", "name": "a"}\nnot json\n{"text": "xy", "name": "b"}\n')
    says = "Error: --size fits images; text codecs take the grid from the spec (e.g. ascii:64x64)\n"
    r = invoke(runner, "data", "build", src, "-c", "ascii:8x2", "--size", "8", "-o", tmp_path / "x.h5", "-q",
               ok=False)
    assert r.exit_code == 1 and r.output == says and not (tmp_path / "x.h5").exists()
    (tmp_path / "a.txt").write_text("ab\ncd\n")
    r = invoke(runner, "encode", "-c", "ascii:2x2", "--size", "8", tmp_path / "a.txt", "-o", tmp_path / "t.npz",
               ok=False)
    assert r.exit_code == 1 and r.output == says  # not "skipped a.txt: ..." then "no usable .txt files"
