"""sigil-dcgan and the figures it is judged by, on tiny configs of the built-in glyphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from artforge.onnx_runtime import sample_onnx
from artforge_sigil.figures import frechet, nearest_iou, pooled, strokes

from conftest import invoke, subset_cache

SIGILS = Path(__file__).resolve().parents[1] / "plugins" / "artforge_sigil" / "data" / "sigils64.npz"

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args, ok: bool = True):
    return invoke(CliRunner(), *args, ok=ok)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def glyphs(tmp_path_factory) -> Path:
    """240 built-in sigils as a 16x16 binary cache."""
    return subset_cache(tmp_path_factory.mktemp("sigils"), SIGILS, 240, "binary", 16)


# -- figures --------------------------------------------------------------------------------------
def test_frechet_is_zero_for_one_set_and_matches_the_diagonal_formula():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    assert frechet(a, a) == pytest.approx(0.0, abs=1e-9)
    # independent axes: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2, up to sampling error
    b = a * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64) + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    sa, sb = a.std(0), b.std(0)
    expected = float((a.mean(0) - b.mean(0)).square().sum() + (sa - sb).square().sum())
    assert frechet(a, b) == pytest.approx(expected, rel=0.05)
    assert frechet(b, a) == pytest.approx(frechet(a, b), rel=1e-6)


def test_pooled_averages_the_ink_and_strokes_count_2x2_patterns():
    ink = torch.zeros(1, 16, 16)
    ink[0, :8, :8] = 1
    assert pooled(ink, 2).tolist() == [[1.0, 0.0, 0.0, 0.0]]
    s = strokes(ink)
    assert s.shape == (1, 32)
    assert s[0, :16].sum().item() == pytest.approx(100.0) and s[0, 16:].sum().item() == pytest.approx(100.0)
    assert s[0, 0].item() == pytest.approx(100 * (225 - 64) / 225)  # windows (15x15) that touch no ink
    assert s[0, 15].item() == pytest.approx(100 * 49 / 225)  # all-ink windows inside the square


def test_strokes_tell_glyphs_from_pixel_noise_that_pooled_ink_cannot():
    with np.load(SIGILS) as z:
        ink = torch.from_numpy(z["images"][:400] < 128).long()
    ref, other = ink[:200], ink[200:]
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(200, 64, 64, generator=g) < ink.float().mean(0)).long()
    real_fd, noise_fd = frechet(strokes(other), strokes(ref)), frechet(strokes(noise), strokes(ref))
    assert noise_fd > 20 * real_fd
    assert nearest_iou(ref[:10], ref) == pytest.approx(1.0)  # copies
    assert nearest_iou(noise, ref) < nearest_iou(other, ref)


# -- sigil-dcgan ----------------------------------------------------------------------------------
def test_dcgan_trains_two_discriminator_steps_per_generator_step_samples_evaluates_and_exports(glyphs, tmp_path):
    out = tmp_path / "gan"
    run("train", "--plugin", "sigil-dcgan", "--data", glyphs, "--steps", 6, "--batch-size", 16,
        "--set", "preset=tiny", "--eval-every", 3, "-q", "-o", out)
    train = [m for m in metrics(out) if m["split"] == "train"]
    assert {"d/loss", "g/loss", "d/d_real", "d/d_fake", "g/ink"} <= set(train[-1])
    val = [m for m in metrics(out) if m["split"] == "val"]
    assert val and all(np.isfinite(m["fd_strokes"]) and m["loss"] == m["fd_strokes"] for m in val)
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    d_steps = {int(s["step"]) for s in state["optimizers"]["d"]["state"].values()}
    g_steps = {int(s["step"]) for s in state["optimizers"]["g"]["state"].values()}
    assert d_steps == {12} and g_steps == {6}  # one optimiser each; "d" runs twice per step

    res = run("sample", out, "-n", 9, "-o", tmp_path / "s.png", "--tokens", tmp_path / "s.npz")
    assert "9 samples" in res.output
    with np.load(tmp_path / "s.npz") as z:
        toks = z["tokens"]
    assert toks.shape == (9, 16, 16) and set(np.unique(toks)) <= {0, 1}

    run("eval", out)
    f = json.loads((out / "eval.json").read_text())["figures"]
    for kind in ("real", "samples", "pixel_noise"):
        assert np.isfinite(f[f"fd_strokes_{kind}"]) and f[f"fd_strokes_{kind}"] >= 0
        assert 0 <= f[f"nearest_iou_{kind}"] <= 1
    assert f["fd_strokes_real"] < f["fd_strokes_pixel_noise"]
    assert f["splits"] == 8 and f["fd_strokes_samples_sd"] > 0  # a mean over random halvings, with its spread

    res = run("export", out, "--onnx")
    assert "decoder.onnx" in res.output
    toks, codec = sample_onnx(out / "onnx", 5, seed=1)
    assert toks.shape == (5, 16, 16) and set(np.unique(toks)) <= {0, 1} and codec["codec"] == "binary"
    # noise scaled by 1e30 overflowed float32 in the generator: all paper in torch, all ink in onnxruntime
    for way in ([out], ["--onnx", out / "onnx"]):
        res = run("sample", *way, "-n", 2, "-t", "1e30", "-o", tmp_path / "t.png", ok=False)
        assert "--temperature 1e+30 is too large for sigil-dcgan" in res.output and res.output.count("\n") == 1


def test_dcgan_samples_are_seeded_and_temperature_scales_the_code(glyphs, tmp_path):
    from artforge.engine.run import load_run

    out = tmp_path / "gan"
    run("train", "--plugin", "sigil-dcgan", "--data", glyphs, "--steps", 2, "--batch-size", 8,
        "--set", "preset=tiny", "-q", "-o", out)
    model = load_run(out).model
    s = model.sample(4, generator=torch.Generator().manual_seed(0), temperature=1e-6)
    assert all(torch.equal(s[0], s[i]) for i in range(4))  # every code is (nearly) z = 0
    a = model.sample(4, generator=torch.Generator().manual_seed(3))
    b = model.sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_dcgan_learns_stroke_statistics_on_a_short_run(tmp_path):
    """Against its untrained self, a 300-step run draws glyphs whose 2x2 patterns sit far closer to
    the held-out glyphs' (1,200 glyphs at 32x32: 60 held-out ones against 60 samples)."""
    glyphs = subset_cache(tmp_path, SIGILS, 1200, "binary", 32)
    out = tmp_path / "gan"
    run("train", "--plugin", "sigil-dcgan", "--data", glyphs, "--steps", 300, "--batch-size", 32, "--lr", "5e-4",
        "--set", "preset=tiny", "--set", "width=8", "--eval-every", 300, "-q", "-o", out, "--seed", 0)
    init = tmp_path / "init"
    run("train", "--plugin", "sigil-dcgan", "--data", glyphs, "--steps", 1, "--lr", "1e-12", "--batch-size", 32,
        "--set", "preset=tiny", "--set", "width=8", "-q", "-o", init, "--seed", 0)
    run("eval", out)
    run("eval", init)
    trained = json.loads((out / "eval.json").read_text())["figures"]
    untrained = json.loads((init / "eval.json").read_text())["figures"]
    assert trained["fd_strokes_samples"] < 0.5 * untrained["fd_strokes_samples"]
    assert trained["fd_strokes_samples"] < trained["fd_strokes_pixel_noise"]


@pytest.mark.parametrize(("size", "scale"), [(24, 2), (8, 2)])
def test_dcgan_refuses_sizes_it_cannot_build(tmp_path, size, scale):
    glyph_cache = subset_cache(tmp_path, SIGILS, 20, "binary", size)
    res = run("train", "--plugin", "sigil-dcgan", "--data", glyph_cache, "--steps", 1, "--batch-size", 4,
              "--set", f"scale={scale}", "-q", "-o", tmp_path / "r", ok=False)
    assert res.exit_code != 0 and "power of two" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("model", ["sigil-dcgan", "sigil-cdcgan"])
def test_gans_refuse_a_negative_mode_seeking_weight(glyphs, halves, tmp_path, model):
    # it trained without the term, and without a word
    res = run("train", "--plugin", model, "--data", halves if model == "sigil-cdcgan" else glyphs, "--steps", 1,
              "--batch-size", 4, "--set", "preset=tiny", "--set", "mode_seek=-1", "-q", "-o", tmp_path / "r", ok=False)
    assert res.output.strip() == f"Error: {model}: mode_seek must be 0 or more, got -1.0"
    assert not (tmp_path / "r").exists()


# -- sigil-cdcgan ---------------------------------------------------------------------------------
def halves_cache(folder: Path, n: int = 512, size: int = 16) -> Path:
    """Glyph-like bars, labelled by where they are: ``place=top`` bars lie in the upper half of the
    square, ``place=bottom`` ones in the lower half."""
    from artforge.data.cache import build_cache
    from artforge.plugins import reset_plugin_manager

    rng = np.random.default_rng(0)
    images = np.full((n, size, size), 255, np.uint8)
    place = np.where(np.arange(n) % 2 == 0, "top", "bottom")
    for i in range(n):
        top = 1 + rng.integers(0, size // 2 - 4) + (0 if place[i] == "top" else size // 2)
        left = rng.integers(1, size // 2)
        images[i, top : top + 3, left : left + rng.integers(size // 3, size // 2)] = 0
    np.savez(folder / "halves.npz", images=images, names=np.array([f"g{i}" for i in range(n)]), place=place)
    reset_plugin_manager()
    build_cache(str(folder / "halves.npz"), "binary", folder / "halves.h5", size=size, labels="npz:place",
                workers=1, progress=False)
    return folder / "halves.h5"


@pytest.fixture(scope="module")
def halves(tmp_path_factory) -> Path:
    return halves_cache(tmp_path_factory.mktemp("halves"))


def test_cdcgan_draws_what_its_label_asks_for(halves, tmp_path):
    """After a short run, samples asked for ``place=top`` put their ink in the top half and
    ``place=bottom`` ones in the bottom half, and the code still varies them; the eval agrees."""
    out = tmp_path / "cgan"
    run("train", "--plugin", "sigil-cdcgan", "--data", halves, "--steps", 500, "--batch-size", 32, "--lr", "1e-3",
        "--set", "preset=tiny", "--set", "width=8", "--eval-every", 500, "-q", "-o", out, "--seed", 0)
    for place in ("top", "bottom"):
        run("sample", out, "-n", 64, "--label", f"place={place}", "-o", tmp_path / f"{place}.png",
            "--tokens", tmp_path / f"{place}.npz", "--seed", 1)
        with np.load(tmp_path / f"{place}.npz") as z:
            ink = z["tokens"].astype(float)
        upper, lower = ink[:, :8].sum(), ink[:, 8:].sum()
        share = upper / (upper + lower) if place == "top" else lower / (upper + lower)
        assert share > 0.8, (place, share)
        distinct = len(np.unique(ink.reshape(64, -1), axis=0))
        assert distinct >= 32, (place, distinct)  # not one bar per label: the code still matters
    run("eval", out)
    f = json.loads((out / "eval.json").read_text())["figures"]
    assert f["label_match_real"] > 0.9
    assert f["label_match_samples"] > 0.8 > f["label_match_shuffled"]
    assert f["same_label_iou_samples"] < 0.6  # two codes, one label: two different bars


def test_cdcgan_counts_labels_exactly_through_the_weight_average_and_exports_them(halves, tmp_path):
    from artforge.engine.run import load_run

    out = tmp_path / "cgan"
    run("train", "--plugin", "sigil-cdcgan", "--data", halves, "--steps", 5, "--batch-size", 8,
        "--set", "preset=tiny", "--eval-every", 5, "-q", "-o", out)  # best = last
    model = load_run(out).model  # the weight average (ema 0.999) draws the samples
    used = model.label_counts > 0
    assert int(used.sum()) == 2 and float(model.label_counts.sum()) == 5 * 8  # once per step, not per update
    assert set(model.label_rows[used].flatten().tolist()) == {0.0, 1.0}  # one-hot rows, not averaged
    drawn = model.sample(6, generator=torch.Generator().manual_seed(0))  # labels drawn from the counts
    assert drawn.shape == (6, 16, 16)

    res = run("sample", out, "-n", 2, "--label", "place=left", "-o", tmp_path / "x.png", ok=False)
    assert res.exit_code != 0 and "place=left" in res.output and "place=top" in res.output

    run("export", out, "--onnx")
    manifest = json.loads((out / "onnx" / "manifest.json").read_text())
    assert len(manifest["info"]["label_rows"]) == 2 and sum(manifest["info"]["label_weights"]) == 40
    cols = model.info.label_columns
    vec = np.zeros(len(cols), np.float32)
    vec[cols.index("place=top")] = 1
    toks, _ = sample_onnx(out / "onnx", 3, seed=0, labels=vec)
    assert toks.shape == (3, 16, 16)
    toks, _ = sample_onnx(out / "onnx", 3, seed=0)  # labels drawn from the manifest's counts
    assert toks.shape == (3, 16, 16)


def test_label_options_meet_the_model_that_takes_them(glyphs, halves, tmp_path):
    res = run("train", "--plugin", "sigil-cdcgan", "--data", glyphs, "--steps", 1, "--batch-size", 4,
              "-q", "-o", tmp_path / "c", ok=False)
    assert res.exit_code != 0 and "needs labels" in res.output and "Traceback" not in res.output
    out = tmp_path / "u"
    run("train", "--plugin", "sigil-dcgan", "--data", halves, "--steps", 1, "--batch-size", 4,
        "--set", "preset=tiny", "-q", "-o", out)
    res = run("sample", out, "-n", 2, "--label", "place=top", "-o", tmp_path / "x.png", ok=False)
    assert res.exit_code != 0 and "sigil-cdcgan" in res.output
