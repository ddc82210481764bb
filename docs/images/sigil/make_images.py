"""Make the picture of docs/plugins/sigil.md from a trained sigil-dae run.

    python docs/images/sigil/make_images.py RUN_FOLDER

Writes denoise.png beside itself: 8 held-out glyphs of the run's cache, one per column; rows are
the clean glyph, the corrupted one (the run's noise and holes, as `artforge eval` draws it), a 3x3
median filter of it, and the model's output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from artforge.engine.run import load_run
from artforge.grid import make_grid
from artforge.imageio import save_png
from artforge_sigil.figures import median3

HERE = Path(__file__).resolve().parent


def main(run: str) -> None:
    loaded = load_run(run, device="cpu")
    model, codec = loaded.model, loaded.codec
    ds = loaded.dataset("val")
    clean = ds.__getitems__(list(range(8)))["tokens"]
    noisy = model.held_out_corruption(clean)  # exactly what `artforge eval` corrupts them with
    rows = [clean, noisy, median3(noisy), model.denoise(noisy)]
    tiles = np.concatenate([codec.decode(r.numpy().astype(codec.token_dtype)) for r in rows])
    save_png(make_grid(tiles, ncols=8), HERE / "denoise.png")
    print(f"wrote {HERE / 'denoise.png'}")


if __name__ == "__main__":
    main(sys.argv[1])
