"""ascii-vae: a tiny training run, sampling, interpolation, evaluation and ONNX export through the CLI."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from artforge.codecs import get_codec
from artforge.models import DataInfo

from conftest import invoke

BUILTIN = Path(__file__).resolve().parents[1] / "plugins" / "artforge_ascii" / "data" / "ascii-art.jsonl.gz"
SPEC = "ascii:16x8,crop"
TINY = ["--plugin", "ascii-vae", "--set", "preset=tiny", "--batch-size", "8", "-q"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """48 pieces of the built-in set cropped to 16x8, a cache, and a 3-step run."""
    from click.testing import CliRunner

    from artforge.plugins import reset_plugin_manager

    reset_plugin_manager()
    d = tmp_path_factory.mktemp("ascii")
    with gzip.open(BUILTIN, "rt") as fh:
        items = [json.loads(line) for _, line in zip(range(48), fh, strict=False)]
    (d / "tiny.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    runner = CliRunner()
    invoke(runner, "data", "build", d / "tiny.jsonl", "--codec", SPEC, "-o", d / "tiny.h5")
    invoke(runner, "train", *TINY, "--data", d / "tiny.h5", "--steps", "3", "-o", d / "run")
    (d / "a.txt").write_text(" /\\_/\\\n( o.o )\n > ^ <\n")
    (d / "b.txt").write_text(" _  _\n| || |\n|_||_|\n")
    return d


def test_training_writes_a_run_with_finite_losses_and_counted_frequencies(run):
    from artforge.engine.run import load_run

    recs = [json.loads(line) for line in (run / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["split"] == "train"]
    assert train and all(math.isfinite(r[k]) for r in train for k in ("loss", "ce", "kl", "image"))
    val = [r for r in recs if r["split"] == "val"][-1]
    assert {"loss", "acc", "acc_nonspace", "kl"} <= set(val)
    model = load_run(run / "run").model
    counts = model.char_counts
    assert int(model.freq_batches_seen) == 2 and counts.sum() == 2 * 8 * 16 * 8  # preset tiny counts 2 batches
    w = model.char_weights()
    assert w[model.space] < w[counts.argsort()[-2]]  # spaces weigh less than the next commonest character


def test_weight_average_copies_the_character_counts(run, runner, tmp_path):
    """With ``train.ema`` the evaluated weights are the average, and the character counts behind the
    loss weights and eval's decoding bias must be the counts, not an average of partial counts."""
    import torch

    from artforge.engine.run import load_run

    invoke(runner, "train", *TINY, "--data", run / "tiny.h5", "--steps", "3", "--set", "train.ema=0.99",
           "-o", tmp_path / "ema")
    state = torch.load(tmp_path / "ema" / "last.pt", weights_only=True)
    for key in ("char_counts", "freq_batches_seen"):
        assert torch.equal(state["ema"][key].double(), state["model"][key].double()), key
    model = load_run(tmp_path / "ema").model  # best.pt, EMA weights
    assert float(model.char_counts.sum()) == 2 * 8 * 16 * 8


def test_sample_and_interpolate_write_png_and_text(run, runner):
    codec = get_codec(SPEC)
    invoke(runner, "sample", run / "run", "-n", "4", "-o", run / "s.png")
    assert (run / "s.png").is_file()
    lines = (run / "s.txt").read_text().split("\n")
    assert len(lines) == 4 * 9  # four 8-row grids, a blank line after each
    invoke(runner, "sample", run / "run", "--interpolate", run / "a.txt", run / "b.txt", "-n", "5",
           "-o", run / "i.png", "--tokens", run / "i.npz")
    lines = (run / "i.txt").read_text().split("\n")
    assert len(lines) == 5 * 9
    toks = np.load(run / "i.npz")["tokens"]
    assert toks.shape == (5, 8, 16)
    assert codec.to_text(toks[0]).split("\n") == [x.ljust(16) for x in lines[:8]]
    # noise scaled by 1e20 overflowed float32 in the prior and decoder: NaN logits, every cell character 0
    r = invoke(runner, "sample", run / "run", "-n", "2", "-t", "1e20", "-o", run / "t.png", ok=False)
    assert r.output.startswith("Error: --temperature 1e+20 is too large for ascii-vae") and r.output.count("\n") == 1


def test_eval_reports_the_figures(run, runner):
    out = json.loads(invoke(runner, "eval", run / "run", "--json").output)
    f = out["figures"]
    for k in ("char_accuracy", "nonspace_accuracy", "false_ink_rate", "ssim", "ssim_piece"):
        assert 0.0 <= f[k] <= 1.0, k
    assert f["kl_per_piece"] >= 0 and f["pieces"] == out["samples"]


def test_onnx_export_of_the_decoder_and_numpy_sampling(run, runner):
    import onnxruntime as ort

    from artforge.engine.run import load_run

    invoke(runner, "export", run / "run", "--onnx")
    m = json.loads((run / "run" / "onnx" / "manifest.json").read_text())
    assert m["sampler"] == "artforge.onnx_runtime:latent_decoder"
    assert m["info"] == {"latent_shape": [4 + 4 * 2 * 4], "latent": "gaussian", "temperature": "latent"}
    assert m["modules"]["decoder"]["max_abs_diff"] <= 1e-4
    sess = ort.InferenceSession(str(run / "run" / "onnx" / "decoder.onnx"))
    model = load_run(run / "run").model
    z = np.random.default_rng(1).standard_normal((7, 36)).astype(np.float32)
    with torch.no_grad():
        want = model.decode(model.from_noise(torch.from_numpy(z))).numpy()  # noise -> prior -> decoder
    np.testing.assert_allclose(sess.run(None, {"z": z})[0], want, atol=1e-4)
    invoke(runner, "sample", "--onnx", run / "run" / "onnx", "-n", "3", "-o", run / "o.png")
    assert len((run / "o.txt").read_text().split("\n")) == 3 * 9
    # --temperature scales the noise, as in torch: near 0 every seed gives the mean piece
    texts = {}
    for t in ("1", "1e-6"):
        for seed in ("1", "2"):
            invoke(runner, "sample", "--onnx", run / "run" / "onnx", "-n", "3", "-t", t, "--seed", seed,
                   "-o", run / f"t{t}-{seed}.png")
            texts[t, seed] = (run / f"t{t}-{seed}.txt").read_text()
    assert texts["1e-6", "1"] == texts["1e-6", "2"] and texts["1", "1"] != texts["1", "2"]


def _model(**over):
    from artforge_ascii.model import AsciiVAE, AsciiVAEConfig

    codec = get_codec("ascii:16x8")
    cfg = AsciiVAEConfig(**{"embed": 8, "width": 16, "blocks": 1, "latent": 4, "freq_batches": 1, **over})
    return AsciiVAE(cfg, DataInfo(codec.config(), codec.vocab_size, (8, 16))), codec


def test_schedules_come_from_the_step():
    m, _ = _model(tau_start=1.0, tau_end=0.25, beta=2.0, kl_warmup=0.5)
    m.on_step(0, 100)
    assert m.tau == 1.0 and m.beta == 0.0
    m.on_step(25, 100)
    assert m.beta == pytest.approx(1.0) and m.tau == pytest.approx(0.25**0.25)
    m.on_step(100, 100)
    assert m.beta == 2.0 and m.tau == pytest.approx(0.25)


def test_image_loss_reaches_the_logits_and_frequencies_freeze():
    m, codec = _model(image_weight=1.0)
    tokens = torch.from_numpy(codec.encode(["|_|", "/ \\"]).astype(np.int64))
    m.train()
    m.on_step(0, 10)
    logits = torch.randn(2, 95, 8, 16, requires_grad=True)
    m.image_loss(logits, tokens).backward()
    assert logits.grad.abs().sum() > 0
    m({"tokens": tokens})
    counts = m.char_counts.clone()
    assert counts.sum() == tokens.numel() and counts[codec.chars.index("_")] == 1
    out = m({"tokens": tokens})  # freq_batches=1: counting has stopped
    assert torch.equal(m.char_counts, counts) and torch.isfinite(out["loss"])
    assert "char_counts" in m.state_dict() and "freq_batches_seen" in m.state_dict()


def test_grid_prior_depends_on_the_global_latent():
    m, codec = _model(global_latent=4)
    with torch.no_grad():
        for p in m.prior.net[-1].parameters():  # away from its N(0, I) start
            p.normal_(0, 0.5)
    noise = torch.randn(3, m.latent_dim, generator=torch.Generator().manual_seed(0))
    z = m.from_noise(noise)
    assert torch.equal(z[:, :4], noise[:, :4]) and not torch.allclose(z[:, 4:], noise[:, 4:])
    other = noise.clone()
    other[:, :4] += 1.0
    assert not torch.allclose(m.from_noise(other)[:, 4:], z[:, 4:])
    # the grid's KL is zero when its posterior is the prior given the global part, positive otherwise
    with torch.no_grad():
        pmu, plogvar = m.prior(z[:, :4])
        mu = torch.cat([z[:, :4], pmu], 1)
        logvar = torch.cat([torch.zeros(3, 4), plogvar], 1)
        assert m.kl(mu, logvar, mu)[:, 4:].abs().max() < 1e-5
        shifted = mu.clone()
        shifted[:, 4:] += 0.1
        assert (m.kl(shifted, logvar, shifted)[:, 4:] > 0).all()


def test_validation_nonspace_accuracy_weighs_batches_by_their_ink():
    """Training's acc_nonspace over batches of very different ink is eval's nonspace_accuracy."""
    m, codec = _model()
    heavy = codec.encode(["#" * 16 + "\n" + "@%" * 8 + "\n" + "xo" * 8] * 3)
    light = codec.encode(["#", "@"])
    batches = [{"tokens": torch.from_numpy(t.astype(np.int64))} for t in (heavy, light)]
    torch.manual_seed(0)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    m.train()
    for _ in range(40):  # a little training: right on some ink cells, wrong on others
        opt.zero_grad()
        m(batches[0])["loss"].backward()
        opt.step()
    m.eval()
    got = m.validate(batches)
    want = m.evaluate(batches, codec)
    assert got["acc_nonspace"] == pytest.approx(want["nonspace_accuracy"], abs=1e-6)
    assert got["acc"] == pytest.approx(want["char_accuracy"], abs=1e-6)
    light_acc = m.validate([batches[1]])["acc_nonspace"]
    assert abs(light_acc - m.validate([batches[0]])["acc_nonspace"]) > 0.05  # the two batches differ


@pytest.mark.parametrize("setting, says", [("embed=0", "embed must be at least 1, got 0"),
                                           ("latent=0", "latent must be at least 1, got 0"),
                                           ("prior_width=0", "prior_width must be at least 1, got 0"),
                                           ("tau_end=0", "tau_end must be above 0, got 0.0"),
                                           # these trained without a word
                                           ("freq_batches=0", "freq_batches must be at least 1, got 0 "
                                                              "(freq_power=0 with space_weight=1 weighs every "
                                                              "character alike)"),
                                           ("calibrate=-1", "calibrate must be 0 or more, got -1.0"),
                                           ("freq_power=-0.5", "freq_power must be 0 or more, got -0.5"),
                                           ("beta=-0.5", "beta must be 0 or more, got -0.5"),
                                           ("free_bits=-1", "free_bits must be 0 or more, got -1.0"),
                                           ("space_weight=-1", "space_weight must be 0 or more, got -1.0"),
                                           ("image_weight=-2", "image_weight must be 0 or more, got -2.0"),
                                           ("max_weight=0", "max_weight must be above 0, got 0.0"),
                                           ("image_px=0", "image_px must be 4 to 128 pixels, got 0")])
def test_settings_no_run_can_use_are_one_line_before_training(run, runner, tmp_path, setting, says):
    # torch built the zero-width layers without a word; the first step died as an internal error
    r = invoke(runner, "train", *TINY, "--data", run / "tiny.h5", "--steps", "2", "--set", setting,
               "-o", tmp_path / "r", ok=False)
    assert r.output.strip() == f"Error: ascii-vae: {says}"
    assert not (tmp_path / "r").exists()


def test_a_run_made_before_a_training_bound_still_samples(run, runner, tmp_path):
    """Loss weights are checked when a run is made, not when it is loaded: a run trained (before the
    bound existed) with calibrate=-1 or beta=-0.5 still samples; a new run from it must choose again."""
    state = torch.load(run / "run" / "best.pt", weights_only=True)
    config = json.loads(state["config"])
    config["model_config"].update(calibrate=-1.0, beta=-0.5)
    old = tmp_path / "old.pt"
    torch.save({**state, "config": json.dumps(config)}, old)
    invoke(runner, "sample", old, "-n", "2", "-o", tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    r = invoke(runner, "train", "--init", old, "--data", run / "tiny.h5", "--steps", "1", "-q",
               "-o", tmp_path / "again", ok=False)
    assert r.output.strip() == "Error: ascii-vae: beta must be 0 or more, got -0.5"
