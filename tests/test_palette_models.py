"""Palette models through the CLI on tiny configs: train, sample, eval, interpolate, ONNX, labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from artforge.errors import ArtforgeError
from artforge.models import DataInfo
from artforge.onnx_runtime import sample_onnx
from artforge.plugins import reset_plugin_manager

from conftest import invoke, subset_cache

TILES = Path(__file__).resolve().parents[1] / "plugins" / "artforge_palette" / "data" / "tiles32.npz"
UNCONDITIONAL = ["palette-ae", "palette-conv-ae", "palette-vae", "palette-conv-vae", "palette-gsvae"]
VARIATIONAL = {"palette-vae", "palette-conv-vae", "palette-gsvae", "palette-cvae"}


pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args, ok: bool = True):
    return invoke(CliRunner(), *args, ok=ok)


def train(cache, model, out, *extra):
    return run("train", "--plugin", model, "--data", cache, "--steps", 3, "--batch-size", 4, "--set", "preset=tiny",
               "-q", "-o", out, *extra)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """40 tiles at 8x8, palette:auto/12."""
    return subset_cache(tmp_path_factory.mktemp("palcache"), TILES, 40, "palette:auto/12", 8)


@pytest.fixture(scope="module")
def punks(tmp_path_factory) -> tuple[Path, Path]:
    """A CryptoPunks look-alike: 24x24 RGBA PNGs (punk000.png ...) and a punks.json of labels."""
    d = tmp_path_factory.mktemp("punks")
    rng = np.random.default_rng(0)
    skins = {"male": (174, 139, 97), "female": (219, 177, 128), "alien": (200, 251, 251)}
    labels = {}
    for i in range(36):
        kind = ["male", "female", "alien"][i % 3]
        earring = bool(rng.random() < 0.5)
        img = np.zeros((24, 24, 4), np.uint8)
        img[..., :3] = (99, 133, 150)
        img[..., 3] = 255
        img[6:22, 7:17] = (*skins[kind], 255)
        img[10, 9], img[10, 14] = (0, 0, 0, 255), (0, 0, 0, 255)
        img[22:, 8:16] = (0, 0, 0, 128)  # a translucent shadow: its own palette entry
        if earring:
            img[13, 6] = (255, 216, 0, 255)
        Image.fromarray(img, "RGBA").save(d / f"punk{i:03d}.png")
        labels[str(i)] = {"type": kind, "accessories": ["Earring"] if earring else [], "count": int(earring)}
    (d / "punks.json").write_text(json.dumps(labels))
    return d, d / "punks.json"


@pytest.fixture(scope="module")
def punk_cache(punks, tmp_path_factory) -> Path:
    folder, labels = punks
    out = tmp_path_factory.mktemp("punkcache") / "punks.h5"
    reset_plugin_manager()
    run("data", "build", folder, "--codec", "palette:auto", "--labels", labels, "-o", out, "-q", "-j", "1")
    return out


def _tokens(path: Path) -> np.ndarray:
    with np.load(path) as z:
        return z["tokens"]


# -- every model: train, sample, eval, export ------------------------------------------------------
@pytest.mark.parametrize("model", UNCONDITIONAL)
def test_train_sample_eval_export(cache, tmp_path, model):
    out = tmp_path / "run"
    train(cache, model, out)
    assert (out / "best.pt").is_file() and (out / "metrics.jsonl").is_file()
    run("sample", out, "-n", 5, "-o", tmp_path / "s.png", "--tokens", tmp_path / "s.npz")
    toks = _tokens(tmp_path / "s.npz")
    assert toks.shape == (5, 8, 8) and toks.max() < 13  # palette indices only, by construction
    figures = json.loads(run("eval", out, "--json").output)["figures"]
    for key in ("pixel_accuracy", "exact_image_accuracy", "recon_nats_per_image", "png_bits_per_image", "loss",
                "visible_pixel_accuracy", "visible_mean_delta_e"):
        assert np.isfinite(figures[key])
    if model in VARIATIONAL:
        assert figures["elbo_nats_per_image"] == pytest.approx(figures["recon_nats_per_image"]
                                                               + figures["kl_nats_per_image"])
        assert figures["elbo_bits_per_image"] == pytest.approx(figures["elbo_nats_per_image"] / np.log(2))
    r = run("export", out, "--onnx")
    assert "max abs diff" in r.output
    manifest = json.loads((out / "onnx" / "manifest.json").read_text())
    assert manifest["sampler"] == "artforge.onnx_runtime:latent_decoder"
    assert manifest["info"]["latent"] == ("categorical" if model == "palette-gsvae" else "gaussian")
    assert manifest["modules"]["decoder"]["max_abs_diff"] < 1e-4
    run("sample", "--onnx", out / "onnx", "-n", 6, "-o", tmp_path / "o.png", "--tokens", tmp_path / "o.npz")
    toks = _tokens(tmp_path / "o.npz")
    assert toks.shape == (6, 8, 8) and toks.max() < 13
    # a temperature that overflows float32 in the decoder: torch made a blank grid (NaN logits, argmax 0),
    # onnxruntime other colours; both refuse it alike, and both sample at the largest one allowed
    for way in ([out], ["--onnx", out / "onnx"]):
        run("sample", *way, "-n", 2, "-t", "1e6", "-o", tmp_path / "t.png")
        res = run("sample", *way, "-n", 2, "-t", "1e30", "-o", tmp_path / "t.png", ok=model == "palette-gsvae")
        if model != "palette-gsvae":  # its codes are drawn one-hot, never scaled
            assert res.output == (f"Error: --temperature 1e+30 is too large for {model}, which scales its random "
                                  "codes by it: at most 1e+06 (codes that far out overflow the model's float32 "
                                  "arithmetic)\n")
    run("sample", out, "--label", "x=1", "-o", tmp_path / "x.png", ok=False)
    with pytest.raises(ArtforgeError, match="unconditional"):
        sample_onnx(out / "onnx", 2, labels=np.ones(3, np.float32))


def test_onnx_decoder_matches_torch_samples(cache, tmp_path):
    """The exported decoder, fed the same z, gives the same grids as the torch model."""
    import onnxruntime as ort

    from artforge.engine.run import load_run

    out = tmp_path / "run"
    train(cache, "palette-conv-vae", out)
    run("export", out, "--onnx")
    model = load_run(out).model
    z = torch.randn(7, *model.latent_shape, generator=torch.Generator().manual_seed(3))
    sess = ort.InferenceSession(str(out / "onnx" / "decoder.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"z": z.numpy()})[0]
    with torch.no_grad():
        want = model.decode(z)
    assert logits.shape == (7, model.V, 8, 8)
    np.testing.assert_allclose(logits, want.numpy(), atol=1e-4)


def test_interpolate_from_the_cli(cache, tmp_path):
    out = tmp_path / "run"
    train(cache, "palette-conv-vae", out)
    with np.load(TILES) as z:
        a, b = z["images"][0], z["images"][1]
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(b, "RGBA").save(tmp_path / "b.png")
    run("sample", out, "--interpolate", tmp_path / "a.png", tmp_path / "b.png", "-n", 5, "-o", tmp_path / "i.png",
        "--tokens", tmp_path / "i.npz")
    toks = _tokens(tmp_path / "i.npz")
    assert toks.shape == (5, 8, 8)
    from artforge.engine.run import load_run

    loaded = load_run(out)
    ends = [torch.from_numpy(loaded.codec.encode(loaded.codec.read(p, size=8)[None]).astype(np.int64))
            for p in (tmp_path / "a.png", tmp_path / "b.png")]
    assert np.array_equal(toks[0], loaded.model.reconstruct(ends[0])[0].numpy())
    assert np.array_equal(toks[-1], loaded.model.reconstruct(ends[1])[0].numpy())


# -- labels: CryptoPunks-style data ---------------------------------------------------------------
def test_punks_cache_has_labels(punk_cache):
    from artforge.data.cache import cache_info

    info = cache_info(punk_cache)
    assert info["items"] == 36
    cols = info["labels"]["columns"]
    assert {"type=female", "type=male", "type=alien", "accessories=Earring", "count"} <= set(cols)
    assert any(c.endswith("80") for c in info["codec"]["colors"])  # the 50% shadow is a colour of its own


def test_cvae_samples_by_label(punk_cache, tmp_path):
    out = tmp_path / "cvae"
    train(punk_cache, "palette-cvae", out, "--set", "channels=8,8,8")
    for labels in (["--label", "type=female", "--label", "accessories=Earring"], ["--label", "type=alien"], []):
        run("sample", out, "-n", 6, "-o", tmp_path / "s.png", "--tokens", tmp_path / "s.npz", *labels)
        assert _tokens(tmp_path / "s.npz").shape == (6, 24, 24)
    run("sample", out, "--label", "type=robot", "-o", tmp_path / "bad.png", ok=False)
    r = run("sample", out, "--label", "count=1", "--label", "count=0", "-o", tmp_path / "bad.png", ok=False)
    assert "count takes one value" in r.output and not (tmp_path / "bad.png").exists()
    figures = json.loads(run("eval", out, "--json").output)["figures"]
    assert np.isfinite(figures["elbo_bits_per_image"])
    run("export", out, "--onnx")
    manifest = json.loads((out / "onnx" / "manifest.json").read_text())
    assert manifest["info"]["label_rows"] and len(manifest["info"]["label_weights"]) == len(
        manifest["info"]["label_rows"])
    run("sample", "--onnx", out / "onnx", "-n", 4, "-o", tmp_path / "o1.png", "--label", "type=male")
    run("sample", "--onnx", out / "onnx", "-n", 4, "-o", tmp_path / "o2.png")


def test_conditional_model_needs_labels(cache, tmp_path):
    r = run("train", "--plugin", "palette-cvae", "--data", cache, "--steps", 1, "-b", 4, "-o", tmp_path / "r",
            ok=False)
    assert "needs labels" in r.output


def test_unconditional_model_refuses_labels(punk_cache, tmp_path):
    out = tmp_path / "vae"
    train(punk_cache, "palette-vae", out)
    r = run("sample", out, "--label", "type=female", "-o", tmp_path / "s.png", ok=False)
    assert "unconditional" in r.output


def test_label_bank_counts_rows():
    from artforge_palette.vae import ConvVAEConfig, PaletteCVAE

    m = PaletteCVAE(ConvVAEConfig(channels=(8, 8), latent_channels=2), DataInfo({}, 5, (4, 4), ["a", "b", "c"]))
    y = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 1]])
    m.remember_labels(y)
    m.remember_labels(y[:2])
    rows = {tuple(r.tolist()): c for r, c in zip(m.label_rows, m.label_counts.tolist(), strict=True) if c > 0}
    assert rows == {(1.0, 0.0, 0.0): 3.0, (0.0, 1.0, 0.0): 2.0, (1.0, 0.0, 1.0): 1.0}
    drawn = m.draw_labels(3000, torch.Generator().manual_seed(0))
    share = (drawn == torch.tensor([1.0, 0, 0])).all(1).float().mean()
    assert abs(float(share) - 0.5) < 0.05
    with pytest.raises(ArtforgeError, match="reconstructs an image with its own labels"):
        m.reconstruct(torch.zeros(1, 4, 4, dtype=torch.long))


# -- schedules, priors, resume --------------------------------------------------------------------
def test_gumbel_temperature_and_kl_schedules():
    from artforge_palette.gsvae import GSVAEConfig, PaletteGSVAE

    m = PaletteGSVAE(GSVAEConfig(channels=(8, 8), categories=4, tau_start=1.0, tau_end=0.25, anneal=0.5,
                                 kl_warmup=0.2), DataInfo({}, 5, (4, 4)))
    taus, betas = [], []
    for step in range(0, 101, 10):
        m.on_step(step, 100)
        taus.append(m.tau)
        betas.append(m.beta_now)
    assert taus[0] == 1.0 and taus[5] == pytest.approx(0.25) and taus[-1] == pytest.approx(0.25)
    assert all(a > b for a, b in zip(taus[:5], taus[1:6], strict=True))
    assert betas[0] == 0.0 and betas[1] == pytest.approx(0.5) and betas[2:] == [1.0] * 9


def test_gsvae_resume_is_exact(cache, tmp_path):
    """Stopped after one step and resumed, a run ends with the same weights as one that never stopped
    (the Gumbel temperature and KL weight come from the step number; the noise from the saved RNG)."""
    a, b = tmp_path / "a", tmp_path / "b"
    common = ("--plugin", "palette-gsvae", "--data", cache, "--steps", 4, "-b", 4, "--set", "preset=tiny",
              "--set", "flip=true", "-q")
    run("train", *common, "-o", a)
    run("train", *common, "--max-time", "1e-9", "-o", b)
    assert torch.load(b / "last.pt", weights_only=True)["step"] == 1
    run("train", "--resume", "--out", b, "--max-time", "1e9", "-q")
    sa = torch.load(a / "last.pt", weights_only=True)
    sb = torch.load(b / "last.pt", weights_only=True)
    assert sa["step"] == sb["step"] == 4
    assert sa["model"].keys() == sb["model"].keys()
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])


def test_autoencoder_samples_from_its_fitted_gaussian(cache, tmp_path):
    from artforge.engine.run import load_run

    out = tmp_path / "ae"
    train(cache, "palette-conv-ae", out)
    m = load_run(out).model
    assert float(m.z_seen) == 3 and (m.z_std() > 0).any()
    s1 = m.sample(4, generator=torch.Generator().manual_seed(1))
    s2 = m.sample(4, generator=torch.Generator().manual_seed(2))
    assert s1.shape == (4, 8, 8) and not torch.equal(s1, s2)
    assert torch.equal(m.sample(3, generator=torch.Generator().manual_seed(1), temperature=0.0)[0],
                       m._argmax(m.z_mean[None], None)[0])


def test_forward_figures_are_consistent():
    from artforge_palette.vae import PaletteVAE, VAEConfig

    torch.manual_seed(0)
    m = PaletteVAE(VAEConfig(latent=4, embed=2, hidden=(16,), pixel=4), DataInfo({}, 6, (5, 4))).eval()
    tokens = torch.randint(0, 6, (3, 5, 4))
    out = m({"tokens": tokens})
    assert float(out["loss"].detach()) == pytest.approx(float(out["recon_nats"] + out["kl_nats"]) / 20, rel=1e-5)
    uniform = np.log(6) * 20
    assert 0.5 * uniform < float(out["recon_nats"]) < 2 * uniform  # an untrained softmax is near uniform
    v = m.validate([{"tokens": tokens}])
    assert set(v) == {"loss", "recon_nats", "kl_nats", "pixel_acc"}


@pytest.mark.parametrize("model", ["palette-vae", "palette-gsvae"])
def test_elbo_sample_depends_on_neither_batch_size_nor_seed(model):
    """The ELBO's one posterior sample per image is seeded by the image's place: ``eval -b 1`` and
    ``-b 256`` gave different figures when the draws came from the global stream (on a CPU, codes
    of fewer than 16 numbers are drawn differently one at a time than together)."""
    from artforge_palette.gsvae import GSVAEConfig, PaletteGSVAE
    from artforge_palette.vae import PaletteVAE, VAEConfig

    torch.manual_seed(0)
    info = DataInfo({}, 6, (8, 8))
    m = (PaletteVAE(VAEConfig(latent=5, embed=2, hidden=(16,), pixel=4), info) if model == "palette-vae"
         else PaletteGSVAE(GSVAEConfig(channels=(8, 8), categories=3), info)).eval()
    tokens = torch.randint(0, 6, (13, 8, 8))

    def figures(batch: int, seed: int) -> dict:
        torch.manual_seed(seed)
        return m.evaluate([{"tokens": t} for t in tokens.split(batch)], None)

    ref = figures(13, 0)
    for batch, seed in ((1, 0), (7, 0), (13, 1), (4, 123)):
        f = figures(batch, seed)
        for key in ("recon_nats_per_image", "elbo_nats_per_image", "kl_nats_per_image"):
            assert f[key] == pytest.approx(ref[key], rel=1e-6), (batch, seed, key)
    # still a random draw: the sampled code's cross-entropy is not the mean / mode code's
    assert ref["recon_nats_per_image"] != pytest.approx(ref["code_recon_nats_per_image"], rel=1e-6)


def test_model_checks():
    from artforge_palette.ae import ConvAEConfig, PaletteConvAE

    with pytest.raises(ArtforgeError, match="multiples of 4"):
        PaletteConvAE(ConvAEConfig(), DataInfo({}, 5, (30, 30)))
    with pytest.raises(ArtforgeError, match="2-D"):
        PaletteConvAE(ConvAEConfig(), DataInfo({}, 5, (30,)))
    r = run("train", "--plugin", "palette-vae", "--data", "builtin:emoji32", "--codec", "hsv322", "--steps", 1,
            "-o", "unused", ok=False)
    assert "does not work with codec" in r.output


def test_augment_gives_the_symmetries_of_each_grid():
    from artforge.augment import augment
    from artforge_palette.ae import ConvAEConfig, PaletteConvAE

    torch.manual_seed(0)
    grids = torch.randint(0, 9, (400, 4, 4))
    out = augment(grids, flip=True, turn=True)
    seen = set()
    for g, o in zip(grids, out, strict=True):
        symmetries = [torch.rot90(h, q, (-2, -1)) for h in (g, g.flip(-1)) for q in range(4)]
        hits = [i for i, s in enumerate(symmetries) if torch.equal(s, o)]
        assert hits, "an augmented grid is not a flip/turn of its input"
        seen.add(hits[0])
    assert seen == set(range(8))  # all eight occur
    assert torch.equal(augment(grids, flip=False, turn=False), grids)
    with pytest.raises(ArtforgeError, match="square"):
        PaletteConvAE(ConvAEConfig(turn=True), DataInfo({}, 5, (32, 16)))


def test_augment_shifts_each_grid_circularly():
    from artforge.augment import augment
    from artforge_palette.ae import ConvAEConfig, PaletteConvAE

    torch.manual_seed(0)
    grids = torch.randint(0, 9, (300, 6, 6))
    out = augment(grids, flip=False, turn=False, shift=1)
    seen = set()
    for g, o in zip(grids, out, strict=True):
        hits = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if torch.equal(torch.roll(g, (dy, dx), (0, 1)), o)]
        assert hits, "a shifted grid is not a circular shift of its input by at most one pixel"
        seen.add(hits[0])
    assert len(seen) == 9
    stacked = torch.randint(0, 9, (4, 3, 6, 6))  # extra dims between batch and grid shift together
    out = augment(stacked, flip=False, turn=False, shift=2)
    for g, o in zip(stacked, out, strict=True):
        assert any(torch.equal(torch.roll(g, (dy, dx), (-2, -1)), o) for dy in range(-2, 3) for dx in range(-2, 3))
    with pytest.raises(ArtforgeError, match="shift must be 0 to 7"):
        PaletteConvAE(ConvAEConfig(shift=8), DataInfo({}, 5, (8, 8)))


def test_refined_codes_reconstruct_better(cache, tmp_path):
    from artforge.engine.run import load_run

    out = tmp_path / "ae"
    train(cache, "palette-conv-ae", out, "--set", "shift=1")
    plain = json.loads(run("eval", out, "--json").output)["figures"]
    refined = json.loads(run("eval", out, "--refine", 15, "--json").output)["figures"]
    assert refined["refine_steps"] == 15 and "refine_steps" not in plain
    assert refined["recon_nats_per_image"] < plain["recon_nats_per_image"]
    m = load_run(out).model
    grids = torch.randint(0, m.V, (6, 8, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = m.code(m.posterior(grids, None))
        before = m._recon(m.decode(z), grids)
        z2 = m.refine_code(grids, None, z, 10)
        after = m._recon(m.decode(z2), grids)
    assert z2.shape == z.shape and bool((after <= before).all()) and float(after.sum()) < float(before.sum())
    assert all(p.requires_grad for p in m.parameters())  # the weights are handed back trainable
    vae = tmp_path / "vae"
    train(cache, "palette-conv-vae", vae)
    r = run("eval", vae, "--refine", 5, ok=False)
    assert "--refine is for" in r.output and "Traceback" not in r.output


def test_colour_figures_measure_visible_pixels_and_delta_e():
    from artforge_palette.base import colour_figures
    from artforge_palette.colorspace import srgb_to_lab

    palette = np.array([[0, 0, 0, 0], [255, 0, 0, 255], [250, 0, 0, 255], [0, 0, 255, 128]], np.uint8)
    tokens = np.array([[[0, 1], [2, 3]]])
    exact = colour_figures(tokens, tokens, palette)
    assert exact == {"visible_pixel_accuracy": 1.0, "visible_mean_delta_e": 0.0}
    # background wrong (not counted), red read as near-red, the translucent blue read as red (alpha differs)
    pred = np.array([[[1, 2], [2, 1]]])
    f = colour_figures(tokens, pred, palette)
    lab = srgb_to_lab(palette[:, :3])
    near = np.linalg.norm(lab[1] - lab[2])
    worst = max(np.linalg.norm(lab[i] - lab[j]) for i in range(4) for j in range(4))
    assert f["visible_pixel_accuracy"] == pytest.approx(1 / 3)
    assert f["visible_mean_delta_e"] == pytest.approx((near + 0 + worst) / 3)
    assert 0 < near < 5 < worst
    assert colour_figures(np.zeros((1, 2, 2), int), np.ones((1, 2, 2), int), palette) == {}


def test_reconstruct_from_the_cli(cache, tmp_path):
    out = tmp_path / "ae"
    train(cache, "palette-conv-ae", out)
    with np.load(TILES) as z:
        for i in range(3):
            Image.fromarray(z["images"][i], "RGBA").save(tmp_path / f"t{i}.png")
    (tmp_path / "bad.png").write_text("not a picture")
    r = run("reconstruct", out, *(tmp_path / f"t{i}.png" for i in range(3)), tmp_path / "bad.png",
            "-o", tmp_path / "r.png", "--tokens", tmp_path / "r.npz")
    assert "3 images (1 skipped): pixel accuracy" in r.output and (tmp_path / "r.png").is_file()
    from artforge.engine.run import load_run

    loaded = load_run(out)
    x = torch.from_numpy(loaded.codec.encode(loaded.codec.stack(
        [loaded.codec.read(tmp_path / f"t{i}.png", size=8) for i in range(3)])).astype(np.int64))
    assert np.array_equal(_tokens(tmp_path / "r.npz"), loaded.model.reconstruct(x).numpy())  # the grid's pairs
    refined = run("reconstruct", out, tmp_path / "t0.png", "--refine", 5, "-o", tmp_path / "r5.png")
    assert "codes refined by 5 steps" in refined.output
    vae = tmp_path / "vae"
    train(cache, "palette-conv-vae", vae)
    r = run("reconstruct", vae, tmp_path / "t0.png", "--refine", 5, "-o", tmp_path / "x.png", ok=False)
    assert "--refine is for" in r.output and "Traceback" not in r.output
    r = run("reconstruct", out, tmp_path / "bad.png", "-o", tmp_path / "x.png", ok=False)
    assert "no usable images" in r.output and "Traceback" not in r.output


def test_freeze_keeps_a_part_fixed(cache, tmp_path):
    from artforge.engine.checkpoint import load_checkpoint

    first = tmp_path / "first"
    train(cache, "palette-conv-ae", first)
    tuned = tmp_path / "tuned"
    run("train", "--init", first, "--data", cache, "--steps", 3, "--batch-size", 4, "--lr", 0.05,
        "--set", "freeze=decoder", "-q", "-o", tuned)
    before = load_checkpoint(first / "best.pt")["model"]
    after = load_checkpoint(tuned / "last.pt")["model"]
    moved = {k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("encoder.") or k.startswith("z_") for k in moved)
    r = run("train", "--init", first, "--data", cache, "--steps", 1, "-b", 4, "--set", "freeze=decodr", "-q",
            "-o", tmp_path / "bad", ok=False)
    assert "no parameters under 'decodr'" in r.output and "decoder" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("model, setting, says", [
    ("palette-ae", "pixel=0", "pixel must be at least 1, got 0"),
    ("palette-vae", "hidden=32,0", "hidden must be widths of at least 1, got 32,0"),
    ("palette-conv-ae", "channels=0,0,0", "channels must be widths of at least 1, got 0,0,0"),
    ("palette-conv-vae", "latent_channels=0", "latent_channels must be at least 1, got 0"),
    ("palette-gsvae", "categories=0", "categories must be at least 1, got 0"),
    ("palette-gsvae", "tau_end=0", "tau_end must be above 0, got 0.0"),
])
def test_sizes_no_model_can_use_are_refused_before_training(cache, tmp_path, model, setting, says):
    # torch builds a zero-width layer without complaint; the first step then failed as an internal error
    r = run("train", "--plugin", model, "--data", cache, "--steps", 3, "--batch-size", 4, "--set", "preset=tiny",
            "--set", setting, "-q", "-o", tmp_path / "r", ok=False)
    assert r.output.strip() == f"Error: {model}: {says}"
    assert not (tmp_path / "r").exists()
