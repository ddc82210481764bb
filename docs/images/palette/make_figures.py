"""Make the pictures in docs/plugins/palette.md (run from the repository root).

    python docs/images/palette/make_figures.py convert        # codec pictures, no training needed
    python docs/images/palette/make_figures.py runs RUNS      # model pictures from the runs in the doc

RUNS holds the run folders named in the doc (conv-ae, conv-vae, vae, gsvae, cvae).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TILES = ROOT / "plugins" / "artforge_palette" / "data" / "tiles32.npz"
ARTFORGE = [sys.executable, "-m", "artforge"]


def test_photo(w: int = 192, h: int = 144) -> np.ndarray:
    """A synthetic 'photo': sky gradient, sun with a soft glow, two hills, grain. Seeded."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    sky = np.stack([70 + 120 * yy / h, 120 + 90 * yy / h, 230 - 40 * yy / h], -1)
    d = np.hypot(xx - 0.7 * w, yy - 0.32 * h)
    glow = np.clip(1.2 - d / (0.28 * h), 0, 1)[..., None]
    img = sky * (1 - glow) + np.array([255, 214, 120]) * glow
    img[d < 0.09 * h] = [255, 245, 200]
    hill1 = yy > 0.62 * h + 0.12 * h * np.sin(xx / w * 5.0)
    hill2 = yy > 0.75 * h + 0.08 * h * np.cos(xx / w * 7.0 + 1)
    img[hill1] = np.stack([40 + 60 * (yy / h), 120 + 40 * (xx / w), 50 + 0 * xx], -1)[hill1]
    img[hill2] = np.stack([90 + 50 * (xx / w), 70 + 30 * (yy / h), 40 + 0 * xx], -1)[hill2]
    img += rng.normal(0, 6, img.shape)
    rgba = np.concatenate([np.clip(img, 0, 255), np.full((h, w, 1), 255.0)], -1)
    return rgba.round().astype(np.uint8)


def convert_figure() -> None:
    from artforge.codecs import get_codec
    from artforge.grid import make_grid
    from artforge.imageio import fit_square, save_png
    from artforge_palette.commands import swatch_image

    small = fit_square(test_photo(), 64)  # what `artforge convert --size 64` does first
    cells = [small]
    for spec, dither in (("palette:pico8", "none"), ("palette:pico8", "bayer"), ("palette:pico8", "floyd"),
                         ("palette:gameboy", "floyd"), ("palette:auto/8", "floyd")):
        codec = get_codec(spec)
        if codec.needs_fit:
            codec.fit([small[None]])
        cells.append(codec.decode(codec.convert(small[None], dither=dither))[0])
    save_png(make_grid(np.stack(cells), ncols=6, scale=2), HERE / "convert.png")
    for name in ("pico8", "gameboy", "nes", "cga"):
        save_png(swatch_image(get_codec(f"palette:{name}").palette[1:], cell=12, per_row=27), HERE / f"{name}.png")


def runs_figures(runs: Path) -> None:
    from PIL import Image

    from artforge.codecs import codec_from_config
    from artforge.grid import make_grid
    from artforge.imageio import save_png
    from artforge.tokenfile import load_tokens

    def sample(run: str, out: Path, *extra: str) -> None:
        subprocess.run([*ARTFORGE, "sample", str(runs / run), "-o", str(out), *extra], check=True)

    for run, n in (("conv-vae", 16), ("vae", 16), ("gsvae", 16), ("conv-ae", 8)):
        sample(run, HERE / f"{run}-samples.png", "-n", str(n), "--seed", "1")
    with tempfile.TemporaryDirectory() as tmp, np.load(TILES) as z:
        names = list(z["names"])
        for name, key in (("a", "mon/animals/butterfly4.png"), ("b", "mon/sphinx.png")):
            Image.fromarray(z["images"][names.index(key)], "RGBA").save(Path(tmp) / f"{name}.png")
        sample("vae", HERE / "vae-interpolation.png", "--interpolate", f"{tmp}/a.png", f"{tmp}/b.png", "-n", "8")
        rows = []
        for label in ("dngn", "item", "mon", "player", "gui"):  # one row per label; each column one z
            sample("cvae", Path(tmp) / f"{label}.png", "-n", "8", "--seed", "3", "--label", f"category={label}",
                   "--tokens", f"{tmp}/{label}.npz")
            tf = load_tokens(f"{tmp}/{label}.npz")
            rows.append(codec_from_config(tf.codec).decode(tf.tokens))
        save_png(make_grid(np.concatenate(rows), ncols=8), HERE / "cvae-by-label.png")
    reconstructions(runs)


def reconstructions(runs: Path) -> None:
    import torch

    from artforge.engine.run import load_run
    from artforge.grid import make_grid
    from artforge.imageio import save_png

    for run in ("conv-ae", "conv-vae"):
        loaded = load_run(runs / run)
        ds = loaded.dataset("val")
        tokens = ds.__getitems__(list(range(0, 48, 3)))["tokens"]  # held-out tiles
        with torch.no_grad():
            rec = loaded.model.reconstruct(tokens)
        pairs = np.stack([loaded.codec.decode(tokens.numpy()), loaded.codec.decode(rec.numpy())], 1)
        save_png(make_grid(pairs.reshape(-1, *pairs.shape[2:]), ncols=8), HERE / f"{run}-reconstructions.png")


if __name__ == "__main__":
    if sys.argv[1] == "convert":
        convert_figure()
    else:
        runs_figures(Path(sys.argv[2]))
