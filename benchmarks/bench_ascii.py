"""ascii: image -> ASCII quality against jp2a (SSIM), and glyph-renderer throughput.

Quality: every sigil (64x64) and emoji (32x32) of ../shared/data becomes ASCII art at a grid where
one cell covers 2x4 source pixels (sigils 32x16, emoji 16x8), by artforge and by jp2a (Debian's
jp2a when it is installed, e.g. `apt-get install jp2a`; `--background=light`, since the renders are black ink
on white). Both are drawn with the same glyph atlas and compared with the source by SSIM:

- at the source's resolution (the render box-averaged down to it): the primary figure, how much
  the ASCII looks like the picture;
- at the render's resolution (the source resized up to it): harsher, since glyph texture never
  matches flat areas; an all-space grid is listed as the floor for both.

Run alone: python benchmarks/bench_ascii.py [--limit N]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, table  # noqa: E402

JP2A = "jp2a 1.1 --background=light"
SETS = {  # name: (path, grid cols, rows)
    "sigils-64": (SHARED / "sigils" / "sigils-64.npz", 32, 16),
    "emoji-32": (SHARED / "emoji32" / "emoji-32.npz", 16, 8),
}


def rgba(images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:  # grey sigils: 0 ink, 255 paper
        return np.concatenate([np.repeat(images[..., None], 3, -1), np.full_like(images[..., None], 255)], -1)
    return images


def have_jp2a() -> bool:
    """Whether jp2a is on PATH. A benchmark installs nothing (nothing is fetched at run time): without
    it the comparison rows are left out, and the line says how to get them."""
    if shutil.which("jp2a"):
        return True
    print("jp2a is not installed, so its rows are left out (Debian/Ubuntu: apt-get install jp2a)")
    return False


def jp2a_tokens(images: np.ndarray, codec, cols: int, rows: int) -> np.ndarray:
    """jp2a's text for each picture (composited over white, saved as PNG) at exactly cols x rows."""
    from PIL import Image

    out = np.zeros((len(images), rows, cols), np.int64)
    with tempfile.TemporaryDirectory() as d:
        for i, im in enumerate(images):
            x = im.astype(np.float32) / 255.0
            rgb = x[..., :3] * x[..., 3:4] + (1.0 - x[..., 3:4])
            path = Path(d) / "in.png"
            Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB").save(path)
            text = subprocess.run(["jp2a", f"--size={cols}x{rows}", "--background=light", str(path)],
                                  capture_output=True, text=True, check=True).stdout
            lines = [line.ljust(cols)[:cols] for line in text.rstrip("\n").split("\n")][:rows]
            out[i, : len(lines)] = [[codec.chars.index(ch) for ch in line] for line in lines]
    return out


def compare(name: str, path: Path, cols: int, rows: int, limit: int | None, jp2a: bool) -> list[tuple]:
    """Table rows for one image set: every method's SSIM at both resolutions and its time."""
    import torch

    from artforge.codecs import get_codec
    from artforge_ascii.convert import brightness_ramp, paper_brightness
    from artforge_ascii.renderer import GlyphRenderer
    from artforge_ascii.ssim import ssim

    with np.load(path) as z:
        images = rgba(z["images"])
    if limit:
        images = images[np.random.default_rng(0).choice(len(images), min(limit, len(images)), replace=False)]
    codec = get_codec(f"ascii:{cols}x{rows}")
    render = GlyphRenderer(codec.atlas)
    h, w = codec.atlas.cell
    H, W = images.shape[1:3]
    source = torch.from_numpy(paper_brightness(images, H, W))
    big = torch.from_numpy(paper_brightness(images, rows * h, cols * w))

    def score(tokens: np.ndarray) -> tuple[float, float]:
        lo = hi = 0.0
        for i in range(0, len(tokens), 64):
            pic = render(torch.from_numpy(np.asarray(tokens[i : i + 64], np.int64)))
            small = torch.nn.functional.interpolate(pic, size=(H, W), mode="area")[:, 0]
            lo += float(ssim(small, source[i : i + 64]).sum())
            hi += float(ssim(pic[:, 0], big[i : i + 64]).sum())
        return lo / len(tokens), hi / len(tokens)

    methods = {"all spaces": lambda: np.zeros((len(images), rows, cols), np.int64),
               "brightness ramp (same atlas)": lambda: brightness_ramp(images, codec.atlas, cols, rows)}
    if jp2a:
        methods[JP2A] = lambda: jp2a_tokens(images, codec, cols, rows)
    methods["artforge convert"] = lambda: codec.convert(images)
    methods["artforge convert --edges 0.5"] = lambda: codec.convert(images, edges=0.5)
    out, results = [], {}
    for label, fn in methods.items():
        t = time.perf_counter()
        tokens = fn()
        dt = time.perf_counter() - t
        results[label] = score(tokens)
        out.append((name, f"{cols}x{rows}", len(images), label, f"{results[label][0]:.4f}",
                    f"{results[label][1]:.4f}", f"{1000 * dt / len(images):.2f}"))
    if jp2a:
        lo, hi = (a - b for a, b in zip(results["artforge convert"], results[JP2A], strict=True))
        out.append((name, "", "", "artforge convert - jp2a", f"{lo:+.4f}", f"{hi:+.4f}", ""))
    return out


def quality(limit: int | None) -> None:
    jp2a = have_jp2a()
    rows = []
    for name, (path, cols, grid_rows) in SETS.items():
        if path.exists():
            rows += compare(name, path, cols, grid_rows, limit, jp2a)
        else:
            print(f"{path} is missing; skipping {name}")
    table(rows, ("images", "grid", "n", "method", "SSIM @ source res.", "SSIM @ render res.", "ms/image"))


def throughput() -> None:
    import torch

    from artforge.codecs import get_codec
    from artforge_ascii.renderer import GlyphRenderer

    rows = []
    threads = torch.get_num_threads()
    for n_threads in sorted({1, threads}):
        torch.set_num_threads(n_threads)
        for px in (11, 6):
            codec = get_codec(f"ascii:64x64,px={px}")
            render = GlyphRenderer(codec.atlas)
            h, w = codec.atlas.cell
            g = torch.Generator().manual_seed(0)
            for batch in (16, 64):
                tokens = torch.randint(0, codec.vocab_size, (batch, 64, 64), generator=g)
                probs = torch.softmax(torch.randn(batch, codec.vocab_size, 64, 64, generator=g), 1)
                for label, x in (("hard (tokens)", tokens), ("soft (probabilities)", probs)):
                    with torch.no_grad():
                        render(x)
                        best = 0.0
                        for _ in range(3):  # best of three 1-second runs: the machine may be shared
                            n, t = 0, time.perf_counter()
                            while time.perf_counter() - t < 1.0:
                                render(x)
                                n += batch
                            best = max(best, n / (time.perf_counter() - t))
                    rows.append((n_threads, f"{px} px: {w}x{h} cells, {64 * w}x{64 * h} px", batch, label,
                                 f"{best:,.0f}"))
    torch.set_num_threads(threads)
    print("\nglyph renderer, 64x64 grids per second (float32 output):")
    table(rows, ("threads", "font size", "batch", "input", "grids/s"))


def main(limit: int | None = None) -> None:
    quality(limit)
    throughput()


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, help="at most this many images per set (default: all)")
    main(p.parse_args().limit)
