"""Make the pictures of docs/plugins/ascii.md (needs ../shared/data, jp2a, and a trained run).

    python docs/images/ascii/make_images.py RUN_FOLDER [--models-only]

Writes convert_vs_jp2a.png, reconstructions.png, samples.png and interpolation.png beside itself.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2].parent / "shared" / "data"
PX = 8  # small glyphs keep the PNGs small


def render(codec, tokens: np.ndarray) -> np.ndarray:
    from artforge_ascii.renderer import GlyphRenderer

    with torch.no_grad():
        pic = GlyphRenderer(codec.atlas)(torch.from_numpy(np.asarray(tokens, np.int64)))
    return np.round(pic[:, 0].numpy() * 255).astype(np.uint8)


def row(pictures: list[np.ndarray], gap: int = 6) -> np.ndarray:
    h = max(p.shape[0] for p in pictures)
    parts = []
    for p in pictures:
        parts += [np.pad(p, ((0, h - p.shape[0]), (0, 0)), constant_values=255), np.full((h, gap), 200, np.uint8)]
    return np.concatenate(parts[:-1], 1)


def column(rows: list[np.ndarray], gap: int = 6) -> np.ndarray:
    w = max(r.shape[1] for r in rows)
    parts = []
    for r in rows:
        parts += [np.pad(r, ((0, 0), (0, w - r.shape[1])), constant_values=255), np.full((gap, w), 200, np.uint8)]
    return np.concatenate(parts[:-1], 0)


def save(grey: np.ndarray, name: str) -> None:
    Image.fromarray(grey, "L").save(HERE / name, optimize=True)
    print(f"wrote {HERE / name} {grey.shape[1]}x{grey.shape[0]}")


def convert_vs_jp2a() -> None:
    from artforge.codecs import get_codec
    from artforge_ascii.convert import paper_brightness

    sigils = np.load(SHARED / "sigils" / "sigils-64.npz")["images"][[3, 250, 1200, 2000]]
    sigils = np.concatenate([np.repeat(sigils[..., None], 3, -1), np.full_like(sigils[..., None], 255)], -1)
    emoji = np.load(SHARED / "emoji32" / "emoji-32.npz")["images"][[5, 300, 900, 1500]]
    rows = []
    for images, (cols, grid_rows) in ((sigils, (32, 16)), (emoji, (16, 8))):
        codec = get_codec(f"ascii:{cols}x{grid_rows},px={PX}")
        h, w = codec.atlas.cell
        ours = render(codec, codec.convert(images))
        theirs = render(codec, jp2a(images, codec, cols, grid_rows))
        source = np.round(paper_brightness(images, grid_rows * h, cols * w) * 255).astype(np.uint8)
        for s, a, j in zip(source, ours, theirs, strict=True):
            rows.append(row([s, a, j]))
    save(column(rows), "convert_vs_jp2a.png")


def jp2a(images: np.ndarray, codec, cols: int, rows: int) -> np.ndarray:
    out = np.zeros((len(images), rows, cols), np.int64)
    with tempfile.TemporaryDirectory() as d:
        for i, im in enumerate(images):
            x = im.astype(np.float32) / 255.0
            rgb = x[..., :3] * x[..., 3:4] + (1.0 - x[..., 3:4])
            Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB").save(Path(d) / "in.png")
            text = subprocess.run(["jp2a", f"--size={cols}x{rows}", "--background=light", str(Path(d) / "in.png")],
                                  capture_output=True, text=True, check=True).stdout
            lines = [line.ljust(cols)[:cols] for line in text.rstrip("\n").split("\n")][:rows]
            out[i, : len(lines)] = [[codec.chars.index(ch) for ch in line] for line in lines]
    return out


def crop(tokens: np.ndarray, space: int, margin: int = 1) -> tuple[slice, slice]:
    ink = tokens != space
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    if not len(rows):
        return slice(0, 4), slice(0, 16)
    return (slice(max(0, rows[0] - margin), rows[-1] + 1 + margin),
            slice(max(0, cols[0] - margin), cols[-1] + 1 + margin))


def model_pictures(run: str) -> None:
    from artforge.codecs import codec_from_config
    from artforge.engine.run import load_run

    loaded = load_run(run)
    model = loaded.model
    cfg = dict(loaded.codec.config(), px=PX)
    codec = codec_from_config(cfg)
    ds = loaded.dataset("val")
    names = ds.names()
    picks = [i for i, n in enumerate(names) if n.startswith(("figlet/", "toilet/", "pyfiglet/"))][:5]
    picks += [i for i, n in enumerate(names) if n.startswith("cowsay/")][:1]
    tokens = ds.__getitems__(picks)["tokens"]
    with torch.no_grad():
        rec = model.reconstruct(tokens).numpy()
    tokens = tokens.numpy()
    rows = []
    for t, r in zip(tokens, rec, strict=True):
        rs, cs = crop(t, codec.space)
        both = np.stack([t[rs, cs], r[rs, cs]])
        a, b = render(codec, both)
        rows.append(row([a, b]))
    save(column(rows), "reconstructions.png")

    with torch.no_grad():
        samples = model.sample(8, generator=torch.Generator().manual_seed(0)).numpy()
    pics = []
    for s in samples:
        rs, cs = crop(s, codec.space, 0)
        pics.append(render(codec, s[None, rs, cs])[0])
    save(column([row(pics[:4]), row(pics[4:])]), "samples.png")

    a, b = tokens[0], tokens[1]
    with torch.no_grad():
        steps = model.interpolate(torch.from_numpy(a[None]), torch.from_numpy(b[None]), 6).numpy()
    union = np.concatenate([a[None], b[None], steps]) != codec.space
    rows_, cols_ = np.nonzero(union.any((0, 2)))[0], np.nonzero(union.any((0, 1)))[0]
    rs = slice(max(0, rows_[0] - 1), rows_[-1] + 2)
    cs = slice(max(0, cols_[0] - 1), cols_[-1] + 2)
    save(column([render(codec, g[None, rs, cs])[0] for g in steps]), "interpolation.png")


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    runs = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--models-only" not in flags:  # the comparison needs ../shared/data and jp2a
        convert_vs_jp2a()
    if runs:
        model_pictures(runs[0])
