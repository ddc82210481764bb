"""Make the pictures of docs/plugins/saml.md.

    python docs/images/saml/make_images.py

Writes beside itself:
- symbols.png: artforge's stand-in symbols and the fallback box, in the order of the guide's
  table, each on an upright quad (top row) and on a skewed one (bottom row);
- fit.png: six built-in emoji, one per row: the picture as placed on the canvas, then fits with
  16, 64 and 225 layers (200 steps, the default), cropped to the picture's 96x96 box;
- example.saml: the 64-layer fit of the first of them, for `artforge render`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from artforge.grid import make_grid
from artforge.imageio import save_png
from artforge_saml.codec import SamlCodec, layers_to_tokens
from artforge_saml.fit import fit_picture, place
from artforge_saml.renderer import SamlRenderer
from artforge_saml.symbols import FALLBACK, STAND_INS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PICTURES = [3, 10, 21, 40, 77, 130]  # indices into the built-in emoji32 subset
BOX = (slice(0, 96), slice(48, 144))  # where a square picture sits on the 192x96 canvas


def symbols_picture() -> None:
    ids = sorted(STAND_INS) + [1]  # id 1 has no stand-in: drawn as the fallback box
    assert 1 not in STAND_INS and FALLBACK in STAND_INS
    rows = []
    for skew, tilt in ((0, 0), (8, 6)):
        layers = []
        for i, sid in enumerate(ids):
            x0, y0 = -88 + i * 22, -18  # corners lt, lb, rt, rb
            layers.append([sid, 40, 40, 40, 7, x0 + skew, y0, x0, y0 + 36, x0 + 18 + skew, y0 + tilt, x0 + 18, y0 + 36])
        tokens = layers_to_tokens(np.array(layers), len(layers))[None]
        with torch.no_grad():
            img = SamlRenderer(scale=2)(torch.from_numpy(tokens))
        rows.append((img[0, :, 52:140].clamp(0, 1) * 255).round().to(torch.uint8).movedim(0, -1).numpy())
    save_png(make_grid(np.stack(rows), ncols=1, scale=1), HERE / "symbols.png")


def fit_picture_grid() -> None:
    with np.load(ROOT / "plugins" / "artforge_hsv" / "data" / "emoji32.npz") as z:
        images = z["images"][PICTURES]
    codec = SamlCodec()
    tiles = []
    for n, img in enumerate(images):
        placed, _ = place(img, 192, 96)
        a = placed[..., 3:]
        straight = np.where(a > 0, placed[..., :3] / np.maximum(a, 1e-6), 0)
        tiles.append((np.concatenate([straight, a], -1)[BOX] * 255).round().astype(np.uint8))
        for layers in (16, 64, 225):
            res = fit_picture(img, layers)
            print(f"picture {PICTURES[n]}: {layers} layers, PSNR {res.psnr_baseline:.2f} -> {res.psnr_fit:.2f} dB")
            tiles.append(codec.decode(res.tokens)[BOX])
            if n == 0 and layers == 64:
                SamlCodec(64).write_native(res.tokens[:64], HERE / "example.saml")
    save_png(make_grid(np.stack(tiles), ncols=4, scale=1), HERE / "fit.png")


def main() -> None:
    symbols_picture()
    fit_picture_grid()
    print(f"wrote {HERE}/symbols.png, fit.png, example.saml")


if __name__ == "__main__":
    main()
