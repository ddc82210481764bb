"""Make the sigil-cdcgan picture of docs/plugins/sigil.md and print the figures beside it.

    python docs/images/sigil/make_cgan_images.py CGAN_RUN [CATEGORY ...]

Writes beside itself cgan.png: one row per category (default: a fixed choice of eight), four
training glyphs of that category on the left, a blank tile, then eight samples drawn with its
label (seed 0). Prints, against the 2k training glyphs as the label reader (each glyph reads as
the label of its nearest training glyph by ink IoU): how often held-out glyphs read as their own
label (the ceiling), samples drawn with the held-out glyphs' labels read as the label they were
asked for, and the same samples against those labels shuffled (chance); and how close samples
and held-out glyphs come to a training glyph (ink IoU: a generator that copies scores 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from make_gan_images import run_split  # beside this script

from artforge.engine.run import load_run
from artforge.grid import make_grid
from artforge.imageio import save_png
from artforge_sigil.figures import nearest

HERE = Path(__file__).resolve().parent
SHOWN = ["runic", "ogham", "hexagram", "stars-crosses", "alchemical", "astrological", "linear-a", "mende-kikakui"]


def main(run: str, *shown: str) -> None:
    loaded = load_run(run, device="cpu")
    model, codec = loaded.model, loaded.codec
    cols = model.info.label_columns
    train, held = run_split(loaded, "train"), run_split(loaded, "val")
    tr_tok, tr_lab = train["tokens"], train["labels"].float()
    ho_tok, ho_lab = held["tokens"], held["labels"].float()
    g = torch.Generator().manual_seed(0)

    def read(ink: torch.Tensor) -> torch.Tensor:
        return tr_lab[nearest(ink, tr_tok)[1]]

    samples = model.sample(len(ho_tok), generator=g, labels=ho_lab)
    got = read(samples)
    perm = torch.randperm(len(ho_lab), generator=g)
    same = lambda a, b: float((a == b).all(1).float().mean())  # noqa: E731
    print(f"label read back by the nearest training glyph ({len(ho_tok)} each, {len(tr_tok)} training glyphs): "
          f"held-out glyphs {same(read(ho_tok), ho_lab):.3f}, samples {same(got, ho_lab):.3f}, "
          f"samples against shuffled labels {same(got, ho_lab[perm]):.3f}")
    print(f"nearest training glyph, ink IoU: samples {float(nearest(samples, tr_tok)[0].mean()):.3f}, "
          f"held-out glyphs {float(nearest(ho_tok, tr_tok)[0].mean()):.3f}")

    rows = []
    blank = torch.zeros(1, *tr_tok.shape[1:], dtype=torch.long)
    for name in shown or SHOWN:
        col = f"categories={name}"
        if col not in cols:
            raise SystemExit(f"{run}: no label {col!r}; labels: {', '.join(cols)}")
        y = torch.zeros(len(cols))
        y[cols.index(col)] = 1
        real = tr_tok[(tr_lab == y).all(1)][:4]
        drawn = model.sample(8, generator=torch.Generator().manual_seed(0), labels=y[None])
        rows.append(torch.cat([real, blank.expand(5 - len(real), -1, -1), drawn]))
        print(f"{name}: {int((tr_lab == y).all(1).sum())} training glyphs")
    tiles = np.concatenate([codec.decode(r.numpy().astype(codec.token_dtype)) for r in rows])
    save_png(make_grid(tiles, ncols=13), HERE / "cgan.png")
    print(f"wrote {HERE / 'cgan.png'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
