"""Make docs/images/saml/net.png from a trained saml-net run and its cache's held-out pictures.

    python docs/images/saml/make_net_image.py RUN [--pictures 6] [--steps 100]

One held-out picture per row: the picture, the quadtree mosaic, saml-net's one-pass layers, then
the fit (``--steps`` steps) from the quadtree and from saml-net's layers; all with the run's
layer budget, cropped to the picture's 96x96 box. Prints each tile's PSNR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from artforge.engine.run import load_run
from artforge.grid import make_grid
from artforge.imageio import save_png
from artforge_saml.codec import SamlCodec
from artforge_saml.fit import fit_picture, place
from artforge_saml.net import _straight_rgba

HERE = Path(__file__).resolve().parent
BOX = (slice(0, 96), slice(48, 144))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--pictures", type=int, default=6)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    run = load_run(args.run, expect_model="saml-net")
    net, L = run.model, run.model.config.layers
    ds = run.dataset("val")
    pick = np.linspace(0, len(ds) - 1, args.pictures).round().astype(int).tolist()
    tokens = ds.__getitems__(pick)["tokens"]
    with torch.no_grad():
        pics = net.pictures(tokens)
        rows = net.layers_for(pics).numpy()
    codec = SamlCodec(L)
    tiles = []
    for img, r in zip(_straight_rgba(pics), rows, strict=True):
        placed, _ = place(img, 192, 96)
        a = placed[..., 3:]
        tiles.append((np.concatenate([np.where(a > 0, placed[..., :3] / np.maximum(a, 1e-6), 0), a], -1)[BOX]
                      * 255).round().astype(np.uint8))
        start = r[r[:, 4] > 0.5]
        quad, net_only = fit_picture(img, L, 0), fit_picture(img, L, 0, start=start)
        quad_fit, net_fit = fit_picture(img, L, args.steps), fit_picture(img, L, args.steps, start=start)
        for name, res in (("quadtree", quad), ("saml-net", net_only), ("quadtree+fit", quad_fit),
                          ("saml-net+fit", net_fit)):
            tiles.append(codec.decode(res.tokens)[BOX])
            print(f"{name}: {res.psnr_fit:.2f} dB", end="  ")
        print()
    save_png(make_grid(np.stack(tiles), ncols=5, scale=1), HERE / "net.png")
    print(f"wrote {HERE}/net.png")


if __name__ == "__main__":
    main()
