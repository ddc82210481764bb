"""saml: picture -> Symbol Art quality (PSNR against the quadtree start) and renderer throughput.

Fit: the first N emoji of emoji-32 (the full set beside the repo, else the built-in subset), each
fitted with `fit_picture` at several layer budgets. PSNR is over the picture's box on the canvas
(96x96 for a square picture), on premultiplied RGBA in 0..1, after rounding to what a .saml holds.
The baseline is the fit's own start: the quadtree mosaic of the same number of opaque squares.

Render: random layers (any of the stand-in symbols, random quads over the canvas) drawn by the
hard renderer, pieces per second, at 64 and 225 layers.

Run alone: python benchmarks/bench_saml.py [--pictures N] [--budgets 16,64,225] [--steps 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, emoji_images, table  # noqa: E402


def fit_rows(pictures: int, budgets: list[int], steps: int) -> list[tuple]:
    from artforge_saml.fit import fit_picture

    images, path = emoji_images()
    print(f"fit: first {pictures} pictures of {path.name}, {steps} steps")
    rows = []
    for budget in budgets:
        base, fit, used, secs = [], [], [], []
        for img in images[:pictures]:
            t = time.perf_counter()
            r = fit_picture(img, budget, steps)
            secs.append(time.perf_counter() - t)
            base.append(r.psnr_baseline)
            fit.append(r.psnr_fit)
            used.append(r.layers)
        gain = np.array(fit) - np.array(base)
        rows.append((budget, f"{np.mean(used):.1f}", f"{np.mean(base):.2f}", f"{np.mean(fit):.2f}",
                     f"{gain.mean():+.2f} (min {gain.min():+.2f})", f"{np.mean(secs):.1f}"))
    return rows


def render_rows() -> list[tuple]:
    import torch

    from artforge_saml.renderer import SamlRenderer
    from artforge_saml.symbols import STAND_INS

    rng = np.random.default_rng(0)
    ids = np.array(sorted(STAND_INS))
    r = SamlRenderer()
    rows = []
    for layers in (64, 225):
        for batch in (1, 8):
            t = np.zeros((batch, layers, 13), np.int64)
            t[..., 0] = rng.choice(ids, (batch, layers)) + 1
            t[..., 1:4] = rng.integers(0, 256, (batch, layers, 3))
            t[..., 4] = rng.integers(1, 8, (batch, layers))
            centre = rng.integers(-80, 80, (batch, layers, 1, 2)) * [1, 0.5]
            t[..., 5:] = (centre + rng.integers(-20, 21, (batch, layers, 4, 2)) + 128).reshape(batch, layers, 8)
            x = torch.from_numpy(t)
            with torch.no_grad():
                secs = best_of(lambda x=x: r(x), 3)
            rows.append((layers, batch, f"{secs * 1000:.0f}", f"{batch / secs:.1f}"))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pictures", type=int, default=8)
    ap.add_argument("--budgets", default="16,64")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args(argv if argv is not None else [])
    budgets = [int(b) for b in args.budgets.split(",")]
    table(fit_rows(args.pictures, budgets, args.steps),
          ("layers", "used", "quadtree PSNR", "fitted PSNR", "gain dB", "s/picture"))
    print()
    table(render_rows(), ("layers", "batch", "ms/batch", "pieces/s"))


if __name__ == "__main__":
    main(sys.argv[1:])
