"""hsv codec encode speed vs a per-pixel Python reference (colorsys), in the same process."""

from __future__ import annotations

import colorsys
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, emoji_images, table  # noqa: E402


def python_reference(pixels: np.ndarray, bits: tuple[int, int, int], canon: list[int]) -> list[int]:
    """The obvious per-pixel loop: colorsys, quantise (halves up, hue wrapping), pack, canonicalise."""
    hb, sb, vb = bits
    H, S, V = 1 << hb, (1 << sb) - 1, (1 << vb) - 1
    out = []
    for r, g, b, a in pixels.tolist():
        if a < 128:
            out.append(1 << (hb + sb + vb))
            continue
        h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        hq = math.floor(h * H + 0.5) % H
        out.append(canon[(hq << (sb + vb)) | (math.floor(s * S + 0.5) << vb) | math.floor(v * V + 0.5)])
    return out


def main() -> None:
    from artforge.codecs import get_codec

    images, path = emoji_images()
    batch = np.concatenate([images] * max(1, 4_000_000 // images[..., 0].size))  # >= 4 Mpx
    mpx = batch[..., 0].size / 1e6
    rows = []
    for spec in ("hsv544", "hsv433", "hsv322"):
        codec = get_codec(spec)
        t = time.perf_counter()
        codec.encode(batch[:1])  # per-width tables
        codec.encode(batch)  # the 2^24 table for large batches (built once per process)
        setup = time.perf_counter() - t
        fast = best_of(lambda c=codec: c.encode(batch), 5)
        small = best_of(lambda c=codec: c.encode(images[:64]), 5)  # below the table threshold
        sub = batch.reshape(-1, 4)[:100_000]
        bits = tuple(int(x) for x in spec[3:])
        canon = codec._tables()["canon"].tolist()
        t = time.perf_counter()
        ref = python_reference(sub, bits, canon)
        slow = time.perf_counter() - t
        agree = np.mean(np.array(ref) == codec.encode(sub[None])[0]) * 100
        rows.append((spec, f"{mpx / fast:.1f}", f"{64 * 1024 / small / 1e6:.1f}", f"{0.1 / slow:.2f}",
                     f"{(mpx / fast) / (0.1 / slow):.0f}x", f"{setup:.2f}", f"{agree:.2f}%"))
    print(f"images: {path.name} ({len(images)} x 32x32), batch {mpx:.1f} Mpx")
    table(rows, ("codec", "Mpx/s (large batch)", "Mpx/s (64 images)", "Mpx/s python colorsys loop",
                 "speed-up", "one-off tables s", "agreement"))


if __name__ == "__main__":
    main()
