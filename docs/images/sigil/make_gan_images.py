"""Make the sigil-dcgan pictures of docs/plugins/sigil.md and print the figures beside them.

    python docs/images/sigil/make_gan_images.py GAN_RUN [DAE_RUN]

Writes beside itself gan.png (64 samples, seed 0) and gan_check.png (8 samples; under them, when a
sigil-dae run is given, the samples it cleaned; last, the training glyph closest to each sample).
Prints how close samples and held-out glyphs come to the training glyphs (ink IoU with the nearest
one: a generator that copies its training set scores 1), and, with a denoiser, the stroke Fréchet
distance of the samples to the held-out glyphs before and after cleaning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from artforge.engine.run import load_run
from artforge.grid import make_grid
from artforge.imageio import save_png
from artforge_sigil.figures import frechet, nearest, nearest_iou, strokes

HERE = Path(__file__).resolve().parent


def run_split(loaded, split: str) -> dict[str, torch.Tensor]:
    """The whole ``train`` or ``val`` split of a run's cache as one batch (tokens, labels, ...)."""
    ds = loaded.dataset(split)
    return ds.__getitems__(list(range(len(ds))))


def main(gan_run: str, dae_run: str | None = None) -> None:
    gan = load_run(gan_run, device="cpu")
    model, codec = gan.model, gan.codec
    train, held = run_split(gan, "train")["tokens"], run_split(gan, "val")["tokens"]
    samples = model.sample(len(held), generator=torch.Generator().manual_seed(0))

    def png(rows: list[torch.Tensor], name: str) -> None:
        tiles = np.concatenate([codec.decode(r.numpy().astype(codec.token_dtype)) for r in rows])
        save_png(make_grid(tiles, ncols=8), HERE / name)
        print(f"wrote {HERE / name}")

    png([samples[:64]], "gan.png")
    print(f"nearest training glyph, ink IoU: samples {nearest_iou(samples, train):.3f}, "
          f"held-out glyphs {nearest_iou(held, train):.3f} ({len(samples)} each, {len(train)} training glyphs)")
    rows = [samples[:8]]
    if dae_run:
        dae = load_run(dae_run, device="cpu").model
        cleaned = torch.cat([dae.denoise(part) for part in samples.split(64)])
        rows.append(cleaned[:8])
        print(f"stroke FD to the held-out glyphs: samples {frechet(strokes(samples), strokes(held)):.2f}, "
              f"cleaned by the denoiser {frechet(strokes(cleaned), strokes(held)):.2f}")
    rows.append(train[nearest(samples[:8], train)[1]])
    png(rows, "gan_check.png")


if __name__ == "__main__":
    main(*sys.argv[1:3])
