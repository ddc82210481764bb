"""Bad input across commands: one clear line naming the file, a non-zero exit, nothing destroyed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ARTFORGE, as_a_plain_user, invoke, subprocess_env
from conftest import TINY_HSV as TINY


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory, emoji_dir) -> Path:
    from click.testing import CliRunner

    d = tmp_path_factory.mktemp("tok")
    invoke(CliRunner(), "encode", "-c", "hsv322", emoji_dir / "a", "-o", d / "t.npz")
    return d / "t.npz"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_cache) -> Path:
    from click.testing import CliRunner

    r = tmp_path_factory.mktemp("run") / "run"
    invoke(CliRunner(), "train", *TINY, "--data", tiny_cache, "--steps", "2", "-o", r)
    return r


def test_writing_to_a_device_keeps_the_device(runner, tokens_file, emoji_dir):
    """Atomic writes replace the target; /dev/null must be written, never replaced by a file."""
    invoke(runner, "decode", tokens_file, "-o", os.devnull)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    invoke(runner, "encode", "-c", "hsv322", emoji_dir / "a", "-o", os.devnull)
    assert not Path(os.devnull + ".npz").exists()  # not given a .npz suffix either


def test_dev_stdout_sent_to_a_file_is_written(tokens_file, tmp_path):
    """`decode -o /dev/stdout > x.png`: the atomic writer tried to make its temporary file in /dev (and
    the name has no picture suffix, while the file behind it is a regular one)."""
    import subprocess
    import sys

    with open(tmp_path / "x.png", "wb") as out:
        done = subprocess.run([sys.executable, "-m", "artforge", "decode", tokens_file, "-o", "/dev/stdout"],
                              stdout=out, stderr=subprocess.PIPE, text=True, env=subprocess_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("decoded ") and done.stderr.endswith("-> /dev/stdout (grid)\n"), done.stderr
    from PIL import Image

    with Image.open(tmp_path / "x.png") as picture:  # its report line went to stderr, not into the file
        assert picture.format == "PNG" and picture.size[0] > 0
    from artforge.tokenfile import load_tokens

    # a token file too, with no .npz added to the name (it made /dev/stdout.npz)
    with open(tmp_path / "t.npz", "wb") as out:
        done = subprocess.run([sys.executable, "-m", "artforge", "encode", "-c", "hsv322", tmp_path / "x.png", "-o",
                               "/dev/stdout"], stdout=out, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
                              timeout=120)
    assert done.returncode == 0 and "-> /dev/stdout " in done.stderr, done.stderr
    assert load_tokens(tmp_path / "t.npz").tokens.shape[0] == 1


def test_an_output_folder_named_with_a_line_break_is_one_line(runner, tokens_file, tmp_path):
    """check_output printed the folder's name raw: a line break in it split the error over two lines."""
    r = invoke(runner, "decode", tokens_file, "-o", tmp_path / "no\nsuch" / "x.png", ok=False)
    assert r.output.count("\n") == 1 and "no\\nsuch" in r.output and "does not exist" in r.output, r.output


def test_output_paths(runner, tokens_file, run, tmp_path):
    r = invoke(runner, "decode", tokens_file, "-o", "", ok=False)
    assert "empty path" in r.output
    r = invoke(runner, "decode", tokens_file, "-o", tokens_file, ok=False)
    assert "is the token file being decoded" in r.output and tokens_file.is_file()
    r = invoke(runner, "export", run, "--onnx", "-o", tmp_path / "no" / "such" / "dir", ok=False)
    assert "output folder" in r.output and not (tmp_path / "no").exists()  # no tree made by a typo
    (tmp_path / "afile").write_text("x")
    r = invoke(runner, "train", *TINY, "--data", tmp_path / "t.h5", "-o", tmp_path / "afile", ok=False)
    assert "is a file, expected a run folder" in r.output
    r = invoke(runner, "decode", tokens_file, "-o", tmp_path / "afile" / "x.png", ok=False)
    assert "afile is a file, not a folder" in r.output


def test_data_build_does_not_overwrite_other_files(runner, emoji, tmp_path):
    np.savez(tmp_path / "e.npz", images=emoji[:4])
    (tmp_path / "keep.png").write_bytes(b"\x89PNG not really")
    r = invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv322", "-o", tmp_path / "keep.png", ok=False)
    assert "not an HDF5 cache; refusing to replace it" in r.output
    assert (tmp_path / "keep.png").read_bytes() == b"\x89PNG not really"
    r = invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv322", "-o", tmp_path / "e.npz", ok=False)
    assert "is the source itself" in r.output
    np.savez(tmp_path / "n.npz", images=emoji[:3], names=np.array(["a"]))
    r = invoke(runner, "data", "build", tmp_path / "n.npz", "-c", "hsv322", "-o", tmp_path / "n.h5", ok=False)
    assert "'names' has 1 entries for 3 images" in r.output


def test_data_build_says_what_it_replaced(runner, emoji, tmp_path):
    """The build line names what an -o that held no cache was: not "an unreadable file" when it was read."""
    np.savez(tmp_path / "e.npz", images=emoji[:4])
    (tmp_path / "keep.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "empty.h5").write_bytes(b"")
    for out, why in (("keep.png", "replacing a file that is not an HDF5 cache"),
                     ("empty.h5", "replacing an empty file")):
        r = invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv322", "-o", tmp_path / out, "--force")
        assert r.output.rstrip().endswith(f"; {why})"), r.output


def test_damaged_token_files(runner, tokens_file, tmp_path):
    codec = str(np.load(tokens_file)["codec"])
    for name, tokens in (("flat", np.zeros(4, np.int64)), ("none", np.zeros((0, 8, 8), np.int64))):
        np.savez(tmp_path / f"{name}.npz", tokens=tokens, codec=np.asarray(codec))
        r = invoke(runner, "decode", tmp_path / f"{name}.npz", "-o", tmp_path / "x.png", ok=False)
        assert f"{name}.npz: tokens must be (N, ...)" in r.output
    np.savez(tmp_path / "codec.npz", tokens=np.zeros((1, 4, 4), np.int64), codec=np.asarray("[1]"))
    r = invoke(runner, "decode", tmp_path / "codec.npz", "-o", tmp_path / "x.png", ok=False)
    assert "codec.npz: stored codec config" in r.output
    # a grid of another size than the stored ascii:COLSxROWS codec names
    (tmp_path / "a.txt").write_text("ab\ncd\n")
    invoke(runner, "encode", "-c", "ascii:4x3", tmp_path / "a.txt", "-o", tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as z:
        other = str(z["codec"]).replace('"cols": 4', '"cols": 5')
        np.savez(tmp_path / "grid.npz", tokens=z["tokens"], codec=np.asarray(other))
    r = invoke(runner, "decode", tmp_path / "grid.npz", "-o", tmp_path / "x.png", ok=False)
    assert "grid.npz: grids of 4x3 characters do not fit codec ascii:5x3" in r.output


def test_damaged_compressed_token_files_and_names_that_are_not_a_list(runner, tokens_file, tmp_path):
    """A flipped byte inside a compressed member surfaced zlib's own error ("internal error: error: Error
    -3 while decompressing data"), and a 0-d 'names' array "iteration over a 0-d array"."""
    import zipfile

    data = bytearray(tokens_file.read_bytes())
    with zipfile.ZipFile(tokens_file) as z:
        info = z.getinfo("tokens.npy")
    assert info.compress_type == zipfile.ZIP_DEFLATED
    at = info.header_offset  # the local header's own name and extra lengths (its extra differs)
    start = at + 30 + int.from_bytes(data[at + 26:at + 28], "little") + int.from_bytes(data[at + 28:at + 30], "little")
    data[start:start + 16] = b"\xff" * 16  # no valid deflate block starts so
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    for command in ("decode", "render"):
        r = invoke(runner, command, tmp_path / "bad.npz", "-o", tmp_path / "x.png", ok=False)
        assert r.output.startswith(f"Error: {tmp_path / 'bad.npz'}: not a readable token file (")
        assert "internal error" not in r.output and len(r.output.strip().splitlines()) == 1
    with np.load(tokens_file) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "names.npz", **{**arrays, "names": np.asarray("one")})
    r = invoke(runner, "decode", tmp_path / "names.npz", "-o", tmp_path / "x.png", ok=False)
    assert r.output.strip() == f"Error: {tmp_path / 'names.npz'}: 'names' must be a list (1-d), got shape ()"


def test_a_stored_codec_config_whose_args_are_not_text(runner, tokens_file, tmp_path):
    """'args' of 322 (a number, not "322") ended as "'int' object has no attribute 'replace'"."""
    with np.load(tokens_file) as z:
        config = json.loads(str(z["codec"]))
        tokens = z["tokens"]
    for args, shown in ((322, "322"), (None, "null")):
        np.savez(tmp_path / "n.npz", tokens=tokens, codec=np.asarray(json.dumps({**config, "args": args})))
        for command in ("decode", "render"):
            r = invoke(runner, command, tmp_path / "n.npz", "-o", tmp_path / "x.png", ok=False)
            assert r.output.strip() == (f"Error: {tmp_path / 'n.npz'}: bad stored codec config for 'hsv': 'args' "
                                        f"must be text (the spec after the codec name), not {shown}")


def test_bytes_names_in_an_npz_are_text(runner, emoji, tmp_path):
    """A names array of bytes (dtype S, as h5py and older numpy code write) gave items named "b'cat'"."""
    np.savez(tmp_path / "s.npz", images=emoji[:2], names=np.array([b"cat", b"d\xffg"]))
    invoke(runner, "data", "build", tmp_path / "s.npz", "-c", "hsv322", "-o", tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["names"][:].astype(str).tolist() == ["cat", "d\\xffg"]
    Image.fromarray(emoji[0], "RGBA").save(tmp_path / "e.png")
    invoke(runner, "encode", "-c", "hsv322", tmp_path / "e.png", "-o", tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as z:
        np.savez(tmp_path / "b.npz", tokens=z["tokens"], codec=z["codec"], names=np.array([b"cat"]))
    invoke(runner, "decode", tmp_path / "b.npz", "-o", f"{tmp_path}/out/")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["cat.png"]


def test_bad_jsonl_lines_name_the_file_line_and_problem(runner, tmp_path):
    """A line without 'text' was reported as just 'text' (a KeyError's message); a file of nothing else
    failed with "no items to encode" and no reason at all."""
    lines = ['{"name": "ok", "text": "hi"}', '{"name": "b"}', "[1, 2]", '{"text": 5}', '{"text": null}', "nope"]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    r = invoke(runner, "data", "build", tmp_path / "t.jsonl", "-c", "ascii:8x2", "-o", tmp_path / "t.h5")
    src = tmp_path / "t.jsonl"
    for why in (f"{src}:2: no 'text' field", f"{src}:3: an array, not an object with a 'text' field",
                f"{src}:4: 'text' holds a number, not a string", f"{src}:5: 'text' holds null, not a string",
                f"{src}:6: not JSON (Expecting value: line 1 column 1 (char 0))"):
        assert f"skipped (line): {why}\n" in r.output, r.output
    # one line that is not UTF-8 is a skipped line, not a failed build; "name": null is no name
    (tmp_path / "u.jsonl").write_bytes(b'{"name": null, "text": "ab"}\n{"text": "c\xff"}\n'
                                       b'{"name": null, "text": "cd"}\n')
    r = invoke(runner, "data", "build", tmp_path / "u.jsonl", "-c", "ascii:2x1", "-o", tmp_path / "u.h5")
    assert f"skipped (line): {tmp_path / 'u.jsonl'}:2: not UTF-8 (byte 0xff at offset 11)\n" in r.output, r.output
    with h5py.File(tmp_path / "u.h5") as f:
        assert f["names"][:].astype(str).tolist() == ["line1", "line3"]
    (tmp_path / "none.jsonl").write_text('{"name": "b"}\n')
    r = invoke(runner, "data", "build", tmp_path / "none.jsonl", "-c", "ascii:8x2", "-o", tmp_path / "n.h5", ok=False)
    assert r.output.strip() == (f"Error: {tmp_path / 'none.jsonl'}: every item was skipped (1); first: (line): "
                                f"{tmp_path / 'none.jsonl'}:1: no 'text' field")



def test_tokens_of_another_rank_than_the_codecs_name_the_file(runner, tokens_file, tiny_cache, tmp_path):
    """hsv tokens with an extra axis ((N, H, W, 1), as a model's output may come) or one too few were
    decoded into pictures of the wrong rank and blamed on the codec ("codec hsv322's decode returned
    shape ..."); they are the file's fault, and the error names it."""
    with np.load(tokens_file) as z:
        np.savez(tmp_path / "extra.npz", tokens=z["tokens"][..., None], codec=z["codec"])
    for command in ("decode", "render"):
        r = invoke(runner, command, tmp_path / "extra.npz", "-o", tmp_path / "x.png", ok=False)
        assert f"Error: {tmp_path / 'extra.npz'}: items of shape (32, 32, 1) do not fit codec hsv322 (its items " \
               "have 2 axes)" in r.output, r.output
    rows = tmp_path / "rows.h5"
    rows.write_bytes(tiny_cache.read_bytes())
    with h5py.File(rows, "a") as f:
        flat = f["tokens"][:].reshape(len(f["tokens"]), -1)
        del f["tokens"]
        f["tokens"] = flat
    r = invoke(runner, "data", "preview", rows, "-o", tmp_path / "p.png", ok=False)
    assert f"Error: {rows}: items of shape (64,) do not fit codec hsv322" in r.output, r.output
    r = invoke(runner, "data", "verify", rows, ok=False)
    assert "items of shape (64,) do not fit codec hsv322 (its items have 2 axes)" in r.output

def test_damaged_caches(runner, tiny_cache, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(tiny_cache.read_bytes())
    with h5py.File(bad, "a") as f:
        del f["names"]
    r = invoke(runner, "data", "info", bad, ok=False)
    assert "bad.h5: damaged artforge cache (names is not a list of 64 names)" in r.output
    big = tmp_path / "big.h5"
    big.write_bytes(tiny_cache.read_bytes())
    with h5py.File(big, "a") as f:
        vocab = int(f.attrs["vocab_size"])
        f["tokens"][0, 0, 0] = vocab  # past the vocabulary: an embedding lookup would crash
    for workers in ("0", "1"):  # in the main process and in a DataLoader worker: one line, no traceback
        r = invoke(runner, "train", *TINY, "--data", big, "--steps", "1", "-j", workers,
                   "-o", tmp_path / f"r{workers}", ok=False)
        assert f"big.h5: token {vocab} is outside the vocabulary of {vocab}" in r.output
        error = [line for line in r.output.splitlines() if line.startswith("Error:")]
        assert len(error) == 1 and error[0] == r.output.strip().splitlines()[-1]



def test_cache_attributes_and_datasets_of_the_wrong_kind_are_one_line(runner, tiny_cache, tmp_path):
    """Found by fuzzing: an array 'layout' ("truth value of an array ... is ambiguous"), a 'skipped'
    that is not (name, reason) rows ("not enough values to unpack"), names that are not UTF-8 bytes
    ("'ascii' codec can't decode") and a text attribute of such bytes (a surrogate that no output
    takes) were internal errors."""
    def damaged(name, change):
        path = tmp_path / f"{name}.h5"
        path.write_bytes(tiny_cache.read_bytes())
        with h5py.File(path, "a") as f:
            change(f)
        return path

    def replace(key, value):
        def change(f):
            del f[key]
            f[key] = value
        return change

    cases = {
        "layout": (lambda f: f.attrs.__setitem__("layout", np.array([1, 2])), ["info", "verify", "preview"],
                   "cache layout array([1, 2]) is not supported"),
        "skipped": (replace("skipped", np.zeros(3, np.int32)), ["info", "verify", "preview"],
                    "damaged artforge cache (skipped is not a list of (name, reason) rows)"),
        "names": (replace("names", np.array([b"\xff"] * 64)), ["info"],
                  "damaged artforge cache (UnicodeDecodeError: "),
        "version": (lambda f: f.attrs.__setitem__("artforge_version", b"\xff\xfe"), ["info"],
                    "damaged artforge cache (ValueError: attribute 'artforge_version' is not UTF-8 text)"),
    }
    for name, (change, commands, message) in cases.items():
        path = damaged(name, change)
        for command in commands:
            extra = ["-o", tmp_path / "p.png"] if command == "preview" else []
            r = invoke(runner, "data", command, path, *extra, ok=False)
            assert r.output.startswith(f"Error: {path}: {message}"), (name, command, r.output)
            assert len(r.output.strip().splitlines()) == 1, r.output
    r = invoke(runner, "data", "verify", tmp_path / "names.h5", ok=False)
    assert "names: unreadable (" in r.output and "internal error" not in r.output


def test_negative_tokens_and_undecodable_names_in_a_cache_are_one_line_for_train(runner, tiny_cache, tmp_path):
    """A cache of signed tokens below 0 passed `data verify` and failed training with "internal error:
    IndexError: index out of range in self"; names that are not UTF-8 failed in the dataset's reader."""
    neg = tmp_path / "neg.h5"
    neg.write_bytes(tiny_cache.read_bytes())
    with h5py.File(neg, "a") as f:
        tokens = f["tokens"][:].astype(np.int16)
        tokens[0, 0, 0] = -1
        del f["tokens"]
        f["tokens"] = tokens
    r = invoke(runner, "data", "verify", neg, ok=False)
    assert "token -1 < 0" in r.output
    r = invoke(runner, "train", *TINY, "--data", neg, "--steps", "1", "-o", tmp_path / "r1", ok=False)
    assert r.output.strip().splitlines()[-1] == (f"Error: {neg}: token -1 is outside the vocabulary of 129; "
                                                 "check it with `artforge data verify`")
    names = tmp_path / "names.h5"
    names.write_bytes(tiny_cache.read_bytes())
    with h5py.File(names, "a") as f:
        del f["names"]
        f["names"] = np.array([b"\xff%d" % i for i in range(64)])
    r = invoke(runner, "train", *TINY, "--data", names, "--steps", "1", "-o", tmp_path / "r2", ok=False)
    assert f"Error: {names}: damaged artforge cache (" in r.output and "internal error" not in r.output


def test_damaged_caches_are_named_by_preview_verify_and_info(runner, tiny_cache, tmp_path):
    """Tokens outside the cache's codec, a codec attribute that disagrees with vocab_size, attributes
    missing or of the wrong type: one line naming the cache, never "tokens:" or an internal error."""
    def damaged(name, change):
        path = tmp_path / name
        path.write_bytes(tiny_cache.read_bytes())
        with h5py.File(path, "a") as f:
            change(f)
        return path

    big = damaged("big.h5", lambda f: f["tokens"].__setitem__((0, 0, 0), int(f.attrs["vocab_size"])))
    r = invoke(runner, "data", "preview", big, "-o", tmp_path / "p.png", ok=False)
    assert f"Error: {big}: token values" in r.output and "outside codec hsv322's vocabulary of 129" in r.output
    assert not (tmp_path / "p.png").exists()
    other = {"codec": "binary", "spec": "binary", "args": ""}
    swapped = damaged("swapped.h5", lambda f: f.attrs.__setitem__("codec", json.dumps(other)))
    r = invoke(runner, "data", "preview", swapped, "-o", tmp_path / "p.png", ok=False)
    assert str(swapped) + ": token values" in r.output and "codec binary's vocabulary of 2" in r.output
    r = invoke(runner, "data", "verify", swapped, ok=False)
    assert "attr vocab_size=129 but codec binary has a vocabulary of 2" in r.output
    no_date = damaged("no_date.h5", lambda f: f.attrs.__delitem__("created"))
    r = invoke(runner, "data", "info", no_date, ok=False)
    assert str(no_date) + ": damaged artforge cache (KeyError" in r.output and "internal error" not in r.output
    odd_count = damaged("odd_count.h5", lambda f: f.attrs.__setitem__("n_items", "many"))
    r = invoke(runner, "data", "verify", odd_count, ok=False)
    assert "attr n_items='many' but tokens has 64" in r.output and "internal error" not in r.output


def test_unreadable_files_are_one_line_and_unreadable_outputs_are_replaced(tokens_file, tiny_cache, emoji_dir,
                                                                           tmp_path):
    """A token file or cache that may not be read (chmod 000): the command's own one line, not click's
    three-line usage error; an existing output that may not be read is replaced like any other (an
    unreadable cache only with --force: it may not be a cache)."""
    tokens, cache, out = tmp_path / "t.npz", tmp_path / "c.h5", tmp_path / "out.png"
    tokens.write_bytes(tokens_file.read_bytes())
    cache.write_bytes(tiny_cache.read_bytes())
    out.write_bytes(b"old")
    for f in (tokens, cache, out):
        f.chmod(0)
    picture = emoji_dir / "a" / "e001.png"
    runs = as_a_plain_user(["decode", tokens, "-o", tmp_path / "d.png"],
                            ["render", tokens, "-o", tmp_path / "r.png"],
                            ["data", "info", cache],
                            ["data", "preview", cache, "-o", tmp_path / "p.png"],
                            ["convert", picture, "-c", "binary", "-o", out],
                            ["data", "build", picture, "-c", "hsv322", "-o", cache],
                            ["data", "build", picture, "-c", "hsv322", "-o", cache, "--force"])
    for (code, output), name in zip(runs[:4], (tokens, tokens, cache, cache), strict=True):
        assert code == 1 and output == f"Error: {name}: cannot read it (permission denied)\n", output
    assert runs[4][0] == 0 and Image.open(out).size == (32, 32), runs[4][1]
    assert runs[5][0] == 1 and "c.h5: exists and cannot be read (permission denied)" in runs[5][1]
    assert len(runs[5][1].strip().splitlines()) == 1
    assert runs[6][0] == 0 and "built" in runs[6][1], runs[6][1]
    assert h5py.is_hdf5(cache)


def test_unreadable_run_folders_and_checkpoints_are_one_line(run, emoji_dir, tmp_path):
    """A run folder, checkpoint, config or export that may not be read (chmod 000), or one inside a folder
    that may not be searched: the command's own one line naming it, not click's three-line usage error
    nor an internal PermissionError; `runs` names such a folder found in a listing after it, not as a run."""
    import shutil

    locked, hidden = tmp_path / "root" / "locked", tmp_path / "shut" / "run"
    parts, onnx = tmp_path / "parts", tmp_path / "onnx"
    for folder in (locked, hidden, parts, onnx):
        shutil.copytree(run, folder)
    (onnx / "manifest.json").write_text("{}")
    for f in (locked, hidden.parent, parts / "best.pt", parts / "config.json", onnx / "manifest.json"):
        f.chmod(0)
    picture, png = emoji_dir / "a" / "e001.png", tmp_path / "x.png"
    commands = {  # command: the one line it must print
        ("sample", locked, "-o", png): f"{locked}: cannot read the folder (permission denied)",
        ("eval", locked): f"{locked}: cannot read the folder (permission denied)",
        ("reconstruct", locked, picture, "-o", png): f"{locked}: cannot read the folder (permission denied)",
        ("complete", locked, picture, "-k", "2", "-o", png): f"{locked}: cannot read the folder (permission denied)",
        ("export", locked, "--onnx"): f"{locked}: cannot read the folder (permission denied)",
        ("train", "--resume", "-o", locked): f"{locked}: cannot read the folder (permission denied)",
        ("sample", "--onnx", locked, "-o", png): f"{locked}: cannot read the folder (permission denied)",
        ("sample", hidden / "best.pt", "-o", png): f"{hidden / 'best.pt'}: cannot reach it (permission denied on "
                                                   "a folder above it)",
        ("eval", hidden): f"{hidden}: cannot reach it (permission denied on a folder above it)",
        ("runs", hidden): f"{hidden}: cannot reach it (permission denied on a folder above it)",
        ("runs", locked): f"{locked}: cannot read the folder (permission denied)",
        ("sample", parts, "-o", png): f"{parts / 'best.pt'}: cannot read it (permission denied)",
        ("train", "--resume", "-o", parts): f"{parts / 'config.json'}: cannot read it (permission denied)",
        ("sample", "--onnx", onnx, "-o", png): f"{onnx / 'manifest.json'}: cannot read it (permission denied)",
    }
    results = as_a_plain_user(*commands, ["runs", locked.parent, "--json"])
    for (code, output), (args, line) in zip(results, commands.items(), strict=False):
        assert code == 1 and output == f"Error: {line}\n", (args, output)
    code, output = results[-1]  # a folder that may not be read is not known to be a run: no row, a note
    assert code == 0 and output == f"[]\ncould not read 1 folder: {locked}\n", output
    assert not png.exists()
    for f in (locked, hidden.parent):
        f.chmod(0o755)


def test_train_settings_are_checked(runner, tiny_cache, tmp_path):
    for args, message in ((["--lr", "nan"], "lr must be a finite number"),
                          (["--set", "train.steps=0"], "steps must be at least 1"),
                          (["--set", "ema=2"], "ema must be in [0, 1)"),
                          (["--set", "dropout=2"], "dropout must be in [0, 1)"),
                          (["--set", "n_head=0"], "n_head must be at least 1")):
        r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "1", *args, "-o", tmp_path / "x", ok=False)
        assert message in r.output, (args, r.output)
        assert "internal error" not in r.output


def test_train_settings_are_checked_before_a_cache_is_built(runner, emoji_dir, tmp_path):
    # a source (not a cache) would be encoded first; a bad setting must not wait for that
    for args, message in ((["--lr", "nan"], "lr must be a finite number"),
                          (["--set", "dropout=2"], "dropout must be in [0, 1)")):
        r = invoke(runner, "train", *TINY, "--data", emoji_dir, "-c", "hsv433", "--size", "8", *args,
                   "-o", tmp_path / "runs" / "x", ok=False)
        assert message in r.output and "cache" not in r.output, (args, r.output)
        assert not (tmp_path / "runs").exists()  # no .cache beside the run, no run folder


def test_damaged_run_folders(runner, run, tmp_path):
    r = invoke(runner, "sample", run, "--checkpoint", "nope.pt", "-o", tmp_path / "x.png", ok=False)
    assert "nope.pt: no such checkpoint in the run folder (it has: best.pt, last.pt)" in r.output
    state = torch.load(run / "best.pt", weights_only=True)
    config = json.loads(state["config"])
    config["model_config"]["n_head"] = 0
    damaged = tmp_path / "damaged.pt"
    torch.save({**state, "config": json.dumps(config)}, damaged)
    r = invoke(runner, "sample", damaged, "-o", tmp_path / "x.png", ok=False)
    assert "damaged.pt: its run config: hsv-transformer: n_head must be at least 1" in r.output
    torch.save({k: v for k, v in state.items() if k != "model"}, damaged)
    r = invoke(runner, "sample", damaged, "-o", tmp_path / "x.png", ok=False)
    assert "damaged.pt: unusable run config or state (KeyError" in r.output
    r = invoke(runner, "sample", run, "-t", "nan", "-o", tmp_path / "x.png", ok=False)
    assert "--temperature must be > 0 and finite" in r.output


def test_resume_without_last_checkpoint_keeps_best(runner, run, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "best.pt"):
        (copy / name).write_bytes((run / name).read_bytes())
    r = invoke(runner, "train", "--resume", "-o", copy, "--steps", "4", ok=False)
    assert "last.pt: missing" in r.output and "--init" in r.output
    assert (copy / "best.pt").read_bytes() == (run / "best.pt").read_bytes()


def test_a_run_whose_config_json_is_gone_is_listed_and_resumes_from_last_pt(runner, run, tmp_path):
    """config.json deleted by hand, the checkpoints (each carrying the run config) kept: `runs` said
    'no runs' and --resume refused ('not a run folder')."""
    copy, only_best = tmp_path / "root" / "copy", tmp_path / "root" / "only-best"
    for folder, names in ((copy, ("best.pt", "last.pt", "metrics.jsonl")), (only_best, ("best.pt",))):
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_bytes((run / name).read_bytes())
    rows = {r["run"]: r for r in json.loads(invoke(runner, "runs", copy.parent, "--json").output)}
    assert rows[str(copy)]["problem"] == (f"config.json is missing (a copy is in last.pt: `artforge train --resume "
                                          f"--out {copy}` restores it, training on to the planned steps)")
    assert rows[str(only_best)]["problem"] == ("config.json is missing (a copy is in best.pt, which sample, eval and "
                                               "export read; --resume needs last.pt)")

    r = invoke(runner, "train", "--resume", "-o", only_best, "--steps", "4", ok=False)
    assert r.output == (f"Error: {only_best / 'config.json'}: missing, and so is last.pt, so the run cannot continue "
                        f"where it stopped; start a new run, e.g. with --init {only_best / 'best.pt'}\n")
    assert sorted(p.name for p in only_best.iterdir()) == ["best.pt"]

    r = invoke(runner, "train", "--resume", "-o", copy, "--steps", "4")
    assert f"note: {copy / 'config.json'} was missing; restored it from the run config last.pt carries" in r.output
    restored, original = json.loads((copy / "config.json").read_text()), json.loads((run / "config.json").read_text())
    assert restored["train"].pop("steps") == 4 and original["train"].pop("steps") == 2
    assert restored == original
    assert torch.load(copy / "last.pt", weights_only=True)["step"] == 4
    assert invoke(runner, "runs", copy, "--json").output.count('"problem"') == 0


def test_damaged_onnx_manifest(runner, run, tmp_path):
    out = tmp_path / "onnx"
    invoke(runner, "export", run, "--onnx", "-o", out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "modules"}))
    r = invoke(runner, "sample", "--onnx", out, "-o", tmp_path / "x.png", ok=False)
    assert "manifest.json: manifest has no 'modules' table" in r.output
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "step.onnx").write_text("not a model")
    r = invoke(runner, "sample", "--onnx", out, "-o", tmp_path / "x.png", ok=False)
    assert "step.onnx: not a loadable ONNX model" in r.output
    # a 'sampler' that is not text was "internal error: AttributeError: 'int' object has no attribute 'partition'"
    (out / "manifest.json").write_text(json.dumps({**manifest, "sampler": 5}))
    r = invoke(runner, "sample", "--onnx", out, "-o", tmp_path / "x.png", ok=False)
    assert r.output.strip() == (f"Error: {out / 'manifest.json'}: 'sampler' must be text "
                                "('package.module:function'), not 5")


def test_metrics_lines_nested_too_deeply_are_left_out_like_other_damaged_lines(runner, run, tmp_path):
    """A metrics.jsonl line of lists nested 100,000 deep was "internal error: RecursionError" in `runs`."""
    import shutil

    copy = tmp_path / "runs" / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".train.lock"))
    with open(copy / "metrics.jsonl", "a") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
    r = invoke(runner, "runs", copy.parent)
    assert "internal error" not in r.output and "run" in r.output


def test_outputs_never_replace_inputs(runner, emoji_dir, tmp_path):
    a = tmp_path / "a.png"
    a.write_bytes((emoji_dir / "a" / "e001.png").read_bytes())
    before = a.read_bytes()
    for args in (["convert", a, "-c", "palette:pico8", "-o", a],
                 ["convert", a, "-c", "ascii:8x4", "-o", tmp_path / "a.txt", "--png", a],
                 ["preview", a, "-c", "hsv433", "-o", a]):
        r = invoke(runner, *args, ok=False)
        assert "a.png: is also an input of this command" in r.output
    assert a.read_bytes() == before



def test_outputs_never_replace_a_file_inside_a_source_folder(runner, emoji_dir, tmp_path):
    """`data build FOLDER -o FOLDER/a.png --force` read a.png as an item, then replaced it with the cache
    (--force skips the "not an HDF5 cache" refusal); `palette extract FOLDER -o FOLDER/a.png` replaced it
    with the palette. The same for a glob and for the labels file."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "b.png"):
        (src / name).write_bytes((emoji_dir / "a" / "e001.png").read_bytes())
    (src / "labels.json").write_text(json.dumps({"a": {"x": 1}, "b": {"x": 2}}))
    before = {p: p.read_bytes() for p in src.iterdir()}
    for args in (["data", "build", src, "-c", "hsv433", "-o", src / "a.png", "--force"],
                 ["data", "build", str(src / "*.png"), "-c", "hsv433", "-o", src / "b.png", "--force"],
                 ["data", "build", src, "-c", "hsv433", "--labels", src / "labels.json", "-o", src / "labels.json",
                  "--force"],
                 ["palette", "extract", src, "-o", src / "a.png"],
                 ["palette", "extract", str(src / "*.png"), "-o", tmp_path / "p.gpl", "--swatch", src / "b.png"]):
        r = invoke(runner, *args, ok=False)
        assert ": is also an input of this command; write the result elsewhere" in r.output, (args, r.output)
    assert {p: p.read_bytes() for p in src.iterdir()} == before

def test_convert_writes_its_own_format_only_under_its_own_suffix(runner, emoji_dir, tmp_path):
    """`convert -c ascii -o art.jpg` wrote the .txt art into art.jpg (and, for many inputs, x.jpg files in
    a folder art.jpg). A picture suffix is now the decoded picture in that format (tests/test_picture_outputs.py);
    any other suffix is refused before anything is written."""
    pic = emoji_dir / "a" / "e001.png"
    for inputs, out, named in (([pic], "art.doc", "art.doc"),
                               ([pic, emoji_dir / "b"], "many.doc", "many.doc/e001.doc")):
        r = invoke(runner, "convert", *inputs, "-c", "ascii:8x4", "-o", tmp_path / out, ok=False)
        assert r.output.strip() == (f"Error: {tmp_path / named}: codec ascii:8x4 writes .txt files of its own, not "
                                    ".doc; write a picture (.png, .jpg, .webp ...), .npz or .txt")
    r = invoke(runner, "convert", pic, emoji_dir / "b", "-c", "palette:pico8", "-o", tmp_path / "p.gpl", ok=False)
    assert ("p.gpl/e001.gpl: codec palette:pico8 has no file format of its own; write a picture (.png, .jpg, "
            ".webp ...) or .npz") in r.output
    assert not list(tmp_path.iterdir())
    invoke(runner, "convert", pic, "-c", "ascii:8x4", "-o", tmp_path / "art")  # no suffix: the codec's own
    assert (tmp_path / "art").read_text().strip()


def test_convert_keeps_inputs_that_share_a_name_apart(runner, emoji_dir, tmp_path):
    for sub in ("x", "y"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        (tmp_path / "in" / sub / "e.png").write_bytes((emoji_dir / "a" / "e001.png").read_bytes())
    r = invoke(runner, "convert", tmp_path / "in", "-c", "palette:pico8", "-o", tmp_path / "out")
    assert "converted 2" in r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x_e.png", "y_e.png"]


def test_convert_names_do_not_depend_on_which_input_came_first(runner, emoji_dir, tmp_path):
    """x.jpg and x.png (and later x.bmp) in one folder: each keeps its own output name, so a rerun
    with --skip-existing never takes one input's output for another's."""
    from PIL import Image

    (tmp_path / "in").mkdir()
    for suffix, colour in ((".jpg", "red"), (".png", "blue")):
        Image.new("RGB", (8, 8), colour).save(tmp_path / "in" / f"x{suffix}")
    invoke(runner, "convert", tmp_path / "in", "-c", "palette:pico8", "-o", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.jpg.png", "x.png.png"]
    Image.new("RGB", (8, 8), "green").save(tmp_path / "in" / "x.bmp")
    r = invoke(runner, "convert", tmp_path / "in", "-c", "palette:pico8", "-o", tmp_path / "out", "--skip-existing")
    assert "converted 1" in r.output and "kept 2" in r.output
    green = np.asarray(Image.open(tmp_path / "out" / "x.bmp.png").convert("RGB"))[4, 4]
    assert green[1] > green[0] and green[1] > green[2]


def test_resume_checks_the_cache_still_fits(runner, run, tiny_cache, emoji, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("best.pt", "last.pt"):
        (copy / name).write_bytes((run / name).read_bytes())
    config = json.loads((run / "config.json").read_text())
    np.savez(tmp_path / "e.npz", images=emoji[:16])
    invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv433", "--size", "8", "-o", tmp_path / "o.h5", "-q")
    config["data"]["cache"] = str(tmp_path / "o.h5")  # rebuilt with another codec since
    (copy / "config.json").write_text(json.dumps(config))
    r = invoke(runner, "train", "--resume", "-o", copy, "--steps", "4", ok=False)
    assert "o.h5: its codec (hsv433) differs from the run" in r.output
    (copy / "config.json").write_text(json.dumps({**config, "train": None}))
    r = invoke(runner, "train", "--resume", "-o", copy, "--steps", "4", ok=False)
    assert "config.json: damaged run config ('train' is missing or not a dict)" in r.output


def test_labels_must_be_finite_and_present(runner, emoji, tmp_path):
    np.savez(tmp_path / "e.npz", images=emoji[:4], names=np.array(["a", "b", "c", "d"]))
    cases = {"nan.csv": "name,w\na,1\nb,nan\n", "empty.json": json.dumps({"a": {}, "b": {"w": None}})}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        r = invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv322", "--labels", tmp_path / name,
                   "-o", tmp_path / "x.h5", ok=False)
        assert name in r.output and ("finite" in r.output or "holds no label values" in r.output), r.output


def test_outputs_never_replace_the_runs_own_files(runner, run, tmp_path):
    before = (run / "best.pt").read_bytes()
    for target in ("best.pt", "config.json"):
        r = invoke(runner, "sample", run, "-n", "2", "-o", run / target, ok=False)
        suffix = target.rsplit(".", 1)[1]  # refused before the run is read: no picture format
        assert f"{target}: .{suffix} is not a picture format artforge writes" in r.output, r.output
    assert (run / "best.pt").read_bytes() == before


def test_decode_to_a_folder_keeps_repeated_names_apart(runner, tokens_file, tmp_path):
    z = dict(np.load(tokens_file))
    np.savez(tmp_path / "t.npz", tokens=z["tokens"][:3], codec=z["codec"], names=np.array(["x.png", "x.png", ""]))
    invoke(runner, "decode", tmp_path / "t.npz", "-o", f"{tmp_path / 'out'}/")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["item.png", "x-2.png", "x.png"]


def test_resume_and_checkpoint_options_stay_within_the_run(runner, run, tiny_cache, tmp_path):
    r = invoke(runner, "eval", run, "--checkpoint", str(tmp_path / "other" / "best.pt"), ok=False)
    assert "--checkpoint names a file inside the run folder" in r.output
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "best.pt", "last.pt"):
        (copy / name).write_bytes((run / name).read_bytes())
    r = invoke(runner, "train", "--resume", "-o", copy, "--steps", "1", ok=False)
    assert "is already at step 2; pass --steps above it" in r.output
    r = invoke(runner, "train", "--resume", "-o", copy, "--data", tiny_cache, "--steps", "3", ok=False)
    assert "drop --data" in r.output


def test_resume_refuses_settings_it_would_ignore(runner, run, tmp_path):
    """--lr, --batch-size, --seed and the intervals are the run's own on --resume: another value is an
    error, not silently dropped (the same value, as in a repeated command line, is fine)."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "best.pt", "last.pt", "metrics.jsonl"):
        (copy / name).write_bytes((run / name).read_bytes())
    r = invoke(runner, "train", "--resume", "-o", copy, "--steps", "3", "--lr", "0.5", "--batch-size", "4",
               "--seed", "7", "--eval-every", "9", ok=False)
    assert "--resume continues with the run's own settings; drop --batch-size 4 (the run's is 8)" in r.output
    assert "--lr 0.5" in r.output and "--seed 7 (the run's is 0)" in r.output and "--eval-every 9" in r.output
    assert torch.load(copy / "last.pt", weights_only=True)["step"] == 2  # nothing trained
    invoke(runner, "train", "--resume", "-o", copy, "--steps", "3", "--batch-size", "8", "--seed", "0", "-q")
    assert torch.load(copy / "last.pt", weights_only=True)["step"] == 3


def test_label_files_that_would_lose_values_are_refused(runner, emoji, tmp_path):
    np.savez(tmp_path / "e.npz", images=emoji[:4], names=np.array(["a", "b", "c", "d"]))
    cases = {"dupcol.csv": ("name,w,w\na,1,0\n", "repeated column name"),
             "duprow.csv": ("name,w\na,1\na,0\n", "repeats the name 'a'"),
             "nested.json": (json.dumps({"a": {"t": [["x"]]}}), "lists hold names")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        r = invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv322", "--labels", tmp_path / name,
                   "-o", tmp_path / "x.h5", ok=False)
        assert name in r.output and message in r.output, r.output


def test_label_files_past_the_parsers_limits_are_one_line_errors(runner, emoji, tmp_path):
    """Found by fuzzing labels files: each was an internal error (csv.Error, OverflowError, ValueError)."""
    np.savez(tmp_path / "e.npz", images=emoji[:2], names=np.array(["a", "b"]))
    cases = {"bigfield.csv": ("name,w\na," + "x" * 200_000 + "\n", "not a readable CSV (field larger than"),
             "bigint.json": ('{"a": {"w": 1' + "0" * 400 + "}}", "labels must be finite float32 numbers"),
             "digits.json": ('{"a": {"w": 1' + "0" * 5000 + "}}", "invalid JSON (Exceeds the limit")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        r = invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv322", "--labels", tmp_path / name,
                   "-o", tmp_path / "x.h5", ok=False)
        assert f"{name}: " in r.output and message in r.output and "internal error" not in r.output, r.output


def test_a_damaged_npz_labels_array_is_a_one_line_error(runner, emoji, tmp_path):
    """Found by fuzzing .npz sources: a labels member with a bad CRC (the images intact) was an internal
    error (BadZipFile) for --labels npz:KEY."""
    import zipfile

    np.savez(tmp_path / "e.npz", images=emoji[:2], labels=np.array([0, 1]))
    with zipfile.ZipFile(tmp_path / "e.npz") as z:
        info = z.getinfo("labels.npy")
    data = bytearray((tmp_path / "e.npz").read_bytes())
    data[info.header_offset + len(info.FileHeader()) + info.compress_size - 1] ^= 1  # last byte: CRC mismatch
    (tmp_path / "e.npz").write_bytes(data)
    r = invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv322", "--labels", "npz:labels",
               "-o", tmp_path / "x.h5", ok=False)
    assert "e.npz: array 'labels' is damaged (Bad CRC-32 for file 'labels.npy')" in r.output, r.output


def test_diverged_weights_are_refused(runner, run, tmp_path):
    state = torch.load(run / "best.pt", weights_only=True)
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))
    state.pop("ema", None)
    torch.save(state, tmp_path / "nan.pt")
    r = invoke(runner, "sample", tmp_path / "nan.pt", "-o", tmp_path / "x.png", ok=False)
    assert f"nan.pt: weight {key} holds NaN" in r.output


def test_a_failed_start_leaves_no_run_behind(runner, tiny_cache, tmp_path, monkeypatch):
    """A run that fails before it logs anything must not block its --out with a lone config.json."""
    from artforge.engine.trainer import Trainer

    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "-b", "100000", "-o", tmp_path / "r", ok=False)
    assert "larger than the" in r.output and not (tmp_path / "r").exists()

    def out_of_memory(self):
        raise MemoryError
    with monkeypatch.context() as m:
        m.setattr(Trainer, "fit", out_of_memory)
        (tmp_path / "mine").mkdir()
        for out in ("r", "mine"):
            r = invoke(runner, "train", *TINY, "--data", tiny_cache, "-o", tmp_path / out, ok=False)
            assert "out of memory" in r.output
    assert not (tmp_path / "r").exists() and list((tmp_path / "mine").iterdir()) == []  # the user's folder stays
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "1", "-o", tmp_path / "r")
    assert (tmp_path / "r" / "last.pt").is_file()


def test_a_closed_output_pipe_is_not_an_error_report():
    """`artforge ... | head -1`: the reader has gone; exit quietly, not with an internal-error line."""
    import subprocess

    read, write = os.pipe()
    os.close(read)  # every write to the pipe now fails with EPIPE
    try:
        r = subprocess.run([*ARTFORGE, "palette", "show", "nes"], stdout=write, stderr=subprocess.PIPE,
                           text=True, env=subprocess_env(), timeout=120)
    finally:
        os.close(write)
    assert r.returncode != 0 and r.stderr == ""


def test_batch_conversions_skip_pictures_the_codec_cannot_take(runner, tmp_path):
    """A fully transparent picture has nothing to learn a palette from: convert skips and counts it,
    palette extract says so about the source, and mixed sizes name a file of each size."""
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "in" / "a.png")
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "in" / "b.png")
    Image.new("RGB", (8, 4), "blue").save(tmp_path / "in" / "c.png")
    r = invoke(runner, "convert", tmp_path / "in", "-c", "palette:auto/8", "-o", tmp_path / "out")
    assert "converted 2" in r.output and "skipped 1" in r.output and "b.png" in r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    r = invoke(runner, "palette", "extract", tmp_path / "in" / "b.png", "-o", tmp_path / "p.gpl", ok=False)
    assert "b.png: no visible pixels" in r.output and "fully transparent" in r.output
    r = invoke(runner, "encode", "-c", "hsv322", tmp_path / "in", "-o", tmp_path / "t.npz", ok=False)
    assert "a.png 8x8" in r.output and "c.png 8x4" in r.output and "--size" in r.output


def test_train_refuses_a_codec_the_model_cannot_take_before_building(runner, tmp_path):
    r = invoke(runner, "train", "--plugin", "ascii-vae", "--data", "builtin:emoji32", "-o", tmp_path / "r", ok=False)
    assert "does not work with codec 'hsv544'" in r.output
    assert "default codec of builtin:emoji32; choose one with --codec" in r.output  # hsv544 was not the user's
    assert not (tmp_path / ".cache").exists() and not (tmp_path / "r").exists()
    r = invoke(runner, "train", "--plugin", "ascii-vae", "--data", "builtin:emoji32", "-c", "hsv433", ok=False)
    assert "does not work with codec 'hsv433'" in r.output and "--codec" not in r.output


def test_a_run_of_a_model_no_plugin_provides_says_so(runner, run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    state = torch.load(copy / "best.pt", weights_only=False)
    state["config"] = json.dumps({**json.loads(state["config"]), "model": "gone-vae"})  # the plugin is gone
    torch.save(state, copy / "best.pt")
    r = invoke(runner, "sample", copy, "-o", tmp_path / "s.png", ok=False)
    assert "no installed plugin provides model 'gone-vae'" in r.output and "install the plugin" in r.output


def test_a_bad_convert_option_stops_the_batch_in_one_line(runner, tmp_path, monkeypatch):
    """An option the codec does not take is the command's mistake, not each picture's: one error
    line, not a "skipped" line per input followed by "no usable images". A picture the codec
    cannot take is still skipped, options or not."""
    from PIL import Image

    from artforge.errors import ArtforgeError
    from artforge_palette.codec import PaletteCodec

    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8), "red").save(tmp_path / "in" / name)
    for spec, flag in (("palette:pico8", ("--edges", "0.5")), ("palette:auto/4", ("--edges", "0.5")),
                       ("ascii:8x4", ("--dither", "floyd"))):
        r = invoke(runner, "convert", tmp_path / "in", "-c", spec, *flag, "-o", tmp_path / "out", ok=False)
        assert r.output.strip() == f"Error: codec {spec} has no option(s) {flag[0]}", r.output
    real = PaletteCodec.convert

    def picky(self, images, **options):
        if (images[..., 2] > 200).all():
            raise ArtforgeError("no blue pictures today")
        return real(self, images, **options)

    monkeypatch.setattr(PaletteCodec, "convert", picky)
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "in" / "c.png")
    r = invoke(runner, "convert", tmp_path / "in", "-c", "palette:pico8", "--dither", "floyd", "-o", tmp_path / "out")
    assert "converted 2" in r.output and "skipped 1" in r.output and "c.png: no blue pictures today" in r.output


@pytest.mark.parametrize("variable, value", [("WORLD_SIZE", "two"), ("WORLD_SIZE", "0"), ("RANK", "1.5"),
                                             ("LOCAL_RANK", "-2")])
def test_junk_distributed_variables_are_one_line(runner, tiny_cache, tmp_path, monkeypatch, variable, value):
    """WORLD_SIZE, RANK and LOCAL_RANK (set by torchrun) were read with int(): junk was an internal error
    (ValueError), and a WORLD_SIZE of 0 divided the batch by zero; nothing of the run may be left."""
    monkeypatch.setenv(variable, value)
    r = invoke(runner, "train", "--plugin", "hsv-transformer", "--data", tiny_cache, "--steps", "1",
               "-o", tmp_path / "run", ok=False)
    assert r.stderr.startswith(f"Error: environment variable {variable}={value!r} is not a whole number"), r.stderr
    assert len(r.stderr.splitlines()) == 1 and not (tmp_path / "run").exists()


def test_local_rank_minus_one_means_one_process(monkeypatch):
    """Some launchers set LOCAL_RANK=-1 for "not distributed": one process trains on device 0 (not
    cuda:-1); with several processes each needs its own device, so -1 is refused."""
    from artforge.errors import ArtforgeError, distributed_env

    monkeypatch.setenv("LOCAL_RANK", "-1")
    assert distributed_env() == (1, 0, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ArtforgeError, match="LOCAL_RANK='-1' is not a whole number of at least 0"):
        distributed_env()
