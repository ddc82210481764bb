"""The sigil denoising autoencoder and its corruption / baseline, on tiny configs of the built-in glyphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from artforge_sigil.figures import corrupt, median3

from conftest import invoke, subset_cache

SIGILS = Path(__file__).resolve().parents[1] / "plugins" / "artforge_sigil" / "data" / "sigils64.npz"

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args, ok: bool = True):
    return invoke(CliRunner(), *args, ok=ok)


@pytest.fixture(scope="module")
def glyphs(tmp_path_factory) -> Path:
    """240 built-in sigils as a 16x16 binary cache."""
    return subset_cache(tmp_path_factory.mktemp("sigils"), SIGILS, 240, "binary", 16)


# -- figures --------------------------------------------------------------------------------------
def test_corrupt_flips_about_the_asked_share_and_blanks_squares():
    clean = torch.zeros(64, 32, 32, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    flipped = corrupt(clean, 0.1, 0, generator=g)
    assert 0.09 < flipped.float().mean() < 0.11
    assert torch.equal(corrupt(clean, 0.0, 0), clean)
    ink = torch.ones(8, 32, 32, dtype=torch.long)
    holed = corrupt(ink, 0.0, 1, generator=g)
    blank = (holed == 0).flatten(1).sum(1)
    assert torch.all(blank == 16)  # one 4x4 square (side 32 / 8) per image


def test_median3_removes_specks_and_keeps_solid_strokes():
    x = torch.zeros(1, 9, 9, dtype=torch.long)
    x[0, 4, :] = 1  # a one-pixel line would go
    x[0, 1, 1] = 1  # a speck goes
    bar = torch.zeros(1, 9, 9, dtype=torch.long)
    bar[0, 3:6, :] = 1  # a three-pixel-wide bar stays
    assert median3(x).sum() == 0
    assert torch.equal(median3(bar), bar)


# -- sigil-dae ------------------------------------------------------------------------------------
def test_dae_learns_to_clean_corrupted_glyphs(glyphs, tmp_path):
    out = tmp_path / "dae"
    res = run("train", "--plugin", "sigil-dae", "--data", glyphs, "--steps", 150, "--batch-size", 32, "--lr", "3e-3",
              "--set", "preset=tiny", "--set", "noise=0.08", "--set", "holes=0", "--eval-every", 150, "-q", "-o", out)
    assert "best.pt" in res.output and "samples/" not in res.output  # nothing to sample, none claimed
    run("eval", out, "--batch-size", 7)
    f7 = json.loads((out / "eval.json").read_text())["figures"]
    run("eval", out)
    f = json.loads((out / "eval.json").read_text())["figures"]
    assert f == f7  # each held-out glyph's corruption is its own fixed draw, whatever the batches
    assert f["pixel_error_model"] < f["pixel_error_corrupted"]
    assert f["ink_iou_model"] > f["ink_iou_corrupted"]
    assert 0.06 < f["pixel_error_corrupted"] < 0.10  # the asked 8% flips, on the same fixed draw

    # reconstruct cleans pictures given as files: speckle added to a glyph is mostly gone
    from artforge.engine.run import load_run

    model = load_run(out).model
    with np.load(SIGILS) as z:
        img = z["images"][300]
    pic = Image.fromarray(img).resize((16, 16), Image.NEAREST)
    clean = (np.asarray(pic) < 128).astype(np.int64)
    noisy = corrupt(torch.from_numpy(clean)[None], 0.08, 0, generator=torch.Generator().manual_seed(1))
    Image.fromarray(np.where(noisy[0].numpy() == 1, 0, 255).astype(np.uint8)).save(tmp_path / "noisy.png")
    res = run("reconstruct", out, tmp_path / "noisy.png", "-o", tmp_path / "pairs.png")
    assert "1 images" in res.output and (tmp_path / "pairs.png").is_file()
    target = torch.from_numpy(clean)[None]
    assert int((model.denoise(noisy) != target).sum()) < int((noisy != target).sum())

    res = run("export", out, "--onnx")
    assert "denoiser.onnx" in res.output
    res = run("sample", out, "-o", tmp_path / "x.png", ok=False)
    assert "cannot sample; it cleans glyphs" in res.output and "artforge reconstruct RUN IMAGES" in res.output
    res = run("sample", "--onnx", out / "onnx", "-o", tmp_path / "x.png", ok=False)
    assert "names no ONNX sampler" in res.output and "denoiser.onnx" in res.output
    assert res.output.count("\n") == 1


def test_dae_refuses_sizes_its_levels_cannot_halve(glyphs, tmp_path):
    res = run("train", "--plugin", "sigil-dae", "--data", glyphs, "--steps", 1, "--set", "levels=5", "-q",
              "-o", tmp_path / "r", ok=False)
    assert res.exit_code != 0 and "levels" in res.output and "Traceback" not in res.output
