"""palette codec speed on the built-in tiles32: index encoding vs per-pixel Python dict lookups.

The seed project (pallets) built its one-hot maps pixel by pixel: read the pixel's RGBA, look
its tuple up in a dict of the palette. Two Python baselines run in this same process on the
same pixels: that method as written (reading each pixel out of the array), and its fastest
pure-Python form (the image turned into lists first). The codec hashes RGBA words instead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, best_of, table  # noqa: E402

TILES = ROOT / "plugins" / "artforge_palette" / "data" / "tiles32.npz"


def dict_lookup_seed_style(images: np.ndarray, lut: dict) -> np.ndarray:
    """Per pixel: read RGBA from the array, look the tuple up (the seed's method)."""
    n, h, w, _ = images.shape
    out = np.zeros((n, h, w), np.int64)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                out[i, y, x] = lut[tuple(int(v) for v in images[i, y, x])]
    return out


def dict_lookup_lists(images: np.ndarray, lut: dict) -> list:
    """The fastest plain-Python form: lists first, then one dict lookup per pixel."""
    return [[[lut[tuple(px)] for px in row] for row in img] for img in images.tolist()]


def main() -> None:
    from artforge.codecs import get_codec

    with np.load(TILES) as z:
        tiles = z["images"]
    codec = get_codec("palette:auto/32")
    t_fit = best_of(lambda: codec.fit([tiles]), repeat=1)
    exact = codec.decode(codec.encode(tiles))  # the tiles as palette images: every pixel a palette colour
    lut = {tuple(int(v) for v in c): i for i, c in enumerate(codec.palette)}
    px = exact[..., 0].size

    t_codec = best_of(lambda: codec.encode(exact), repeat=7)
    sub = exact[:32]
    t0 = time.perf_counter()
    ref = dict_lookup_seed_style(sub, lut)
    t_seed = (time.perf_counter() - t0) * len(exact) / len(sub)
    assert np.array_equal(ref, codec.encode(sub))
    t_lists = best_of(lambda: dict_lookup_lists(exact, lut), repeat=3)
    t_nearest = best_of(lambda: codec.encode(tiles), repeat=3)
    pico = get_codec("palette:pico8")
    t_bayer = best_of(lambda: pico.convert(tiles, dither="bayer"), repeat=3)
    t_floyd = best_of(lambda: pico.convert(tiles, dither="floyd"), repeat=3)

    def row(name, seconds, note=""):
        return (name, f"{px / seconds / 1e6:.2f}", f"{seconds * 1e9 / px:.1f}", note)

    print(f"{len(tiles)} tiles of 32x32 = {px:,} pixels; palette:auto/32 fitted in {t_fit:.2f}s "
          f"({codec.fit_summary()})")
    table([
        row("codec.encode, palette pixels (hash lookup)", t_codec, "1x"),
        row("per-pixel dict lookup, seed style", t_seed, f"codec is {t_seed / t_codec:.0f}x faster"),
        row("per-pixel dict lookup on lists", t_lists, f"codec is {t_lists / t_codec:.0f}x faster"),
        row("codec.encode, raw tiles (nearest in CIELAB)", t_nearest, ""),
        row("pico8 convert, Bayer 4x4", t_bayer, ""),
        row("pico8 convert, Floyd-Steinberg", t_floyd, ""),
    ], ("method", "Mpixel/s", "ns/pixel", "ratio"))


if __name__ == "__main__":
    main()
