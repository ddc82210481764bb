"""The ``palette`` codec: one token per pixel, the index of its colour in a palette.

Index 0 is always "transparent" (alpha 0); indices 1.. are distinct visible RGBA colours, so
translucent colours (shadows, glass) are palette entries of their own. Specs:

- ``palette:auto`` / ``palette:auto/N`` (``palette`` alone means ``auto``, N = 256): the palette
  is learnt from the data (``fit``): its exact colours when there are at most N, otherwise N
  colours found by weighted k-means in CIELAB + alpha. Each ``fit`` learns afresh; the config
  of a fitted codec carries the colours, so caches, checkpoints and ONNX manifests rebuild it.
- presets: ``palette:pico8``, ``gameboy``, ``nes``, ``cga``, ``bw`` (``presets/*.gpl``);
- ``palette:FILE``: a GIMP ``.gpl``, a JSON list of hex colours, a ``.hex`` file or a PNG whose
  pixels are the palette.

Pixels that are palette colours map exactly; others go to the nearest colour in CIELAB after
their alpha snaps to the palette's nearest alpha level (see ``quantize``). ``convert`` adds
ordered (Bayer 4x4) or Floyd-Steinberg dithering. Decode is a table lookup, so
encode -> decode -> encode is a fixed point and palette images round-trip exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from artforge.codecs import Codec
from artforge.errors import ArtforgeError
from artforge_palette import palettes, quantize
from artforge_palette.colorspace import srgb_to_lab

DEFAULT_AUTO = 256
DELTA_E_EXACT = 1 << 20  # fit's mean delta E is exact up to this many distinct moved colours,
DELTA_E_SAMPLE = 1 << 18  # else estimated from this many pixels (standard error ~0.05 delta E)
_AUTO = re.compile(r"^auto(?:/(\d+))?$")
DITHER = {"none": "none", "bayer": "bayer", "ordered": "bayer", "floyd": "floyd", "floyd-steinberg": "floyd",
          "fs": "floyd"}


class PaletteCodec(Codec):
    name = "palette"
    description = "Palette index per pixel (0 = transparent): learnt from data, a preset, or a palette file"
    spec_help = ("palette:auto[/N] (learn N colours from the data, default 256), palette:PRESET "
                 f"({', '.join(palettes.presets())}), or palette:FILE (.gpl, .json, .hex, .png)")
    token_ndim = 2  # (H, W) per item

    def __init__(self, spec_args: str, colors: np.ndarray | None, auto_n: int | None = None,
                 fit_stats: dict | None = None):
        self.args = spec_args
        self.spec = f"palette:{spec_args}"
        self.auto_n = auto_n
        self.refit = colors is None and auto_n is not None  # built from an auto spec: learns on fit()
        self.fit_stats = fit_stats
        self._index: quantize.PaletteIndex | None = None
        self.colors: np.ndarray | None = None
        if colors is not None:
            self._set_colors(colors)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, args: str) -> PaletteCodec:
        args = args.strip() or "auto"
        m = _AUTO.match(args.lower())
        if m:
            n = int(m.group(1)) if m.group(1) else DEFAULT_AUTO
            if not 1 <= n <= palettes.MAX_COLORS:
                raise ArtforgeError(f"bad codec spec 'palette:{args}': N must be 1..{palettes.MAX_COLORS}")
            return cls(f"auto/{n}", None, auto_n=n)
        preset = palettes.presets().get(args.lower())
        if preset is not None:
            return cls(args.lower(), palettes.read_palette(preset))
        path = Path(args)
        if path.suffix.lower() in palettes.SUFFIXES:
            return cls(args, palettes.read_palette(path))
        raise ArtforgeError(
            f"bad codec spec 'palette:{args}': not auto[/N], a preset ({', '.join(palettes.presets())}) "
            "or a palette file (.gpl, .json, .hex, .png)"
        )

    @classmethod
    def from_config(cls, config: dict) -> PaletteCodec:
        args = config.get("args", "auto")
        colors = config.get("colors")
        if colors is None:
            return cls.from_spec(args)
        m = _AUTO.match(args)
        auto_n = int(m.group(1)) if m and m.group(1) else None
        return cls(args, palettes.from_hex_list(list(colors), "codec config"), auto_n=auto_n,
                   fit_stats=config.get("fit"))

    def config(self) -> dict:
        cfg: dict[str, Any] = {"codec": self.name, "spec": self.spec, "args": self.args,
                               "colors": palettes.to_hex(self.colors[1:]) if self.colors is not None else None}
        if self.fit_stats:
            cfg["fit"] = self.fit_stats
        return cfg

    def _set_colors(self, colors: np.ndarray) -> None:
        colors = np.asarray(colors, np.uint8).reshape(-1, 4)
        if len(colors) == 0 or (colors[:, 3] == 0).any():
            raise ArtforgeError("palette colours must be visible (alpha > 0); transparency is index 0")
        self.colors = np.concatenate([np.zeros((1, 4), np.uint8), colors])
        if len(np.unique(quantize.pack(self.colors))) != len(self.colors):
            raise ArtforgeError("palette colours must be distinct")
        self.vocab_size = len(self.colors)
        self._index = None

    @property
    def palette(self) -> np.ndarray:
        """(vocab, 4) uint8 RGBA; row 0 is transparent."""
        return self._need().palette

    def _need(self) -> quantize.PaletteIndex:
        if self.colors is None:
            raise ArtforgeError(f"codec {self.spec} has no palette yet: it is learnt from data "
                                "(artforge data build / encode fit it first)")
        if self._index is None:
            self._index = quantize.PaletteIndex(self.colors)
        return self._index

    def __getstate__(self):  # worker processes rebuild the lookup tables themselves
        state = self.__dict__.copy()
        state["_index"] = None
        return state

    # -- fitting --------------------------------------------------------------------------------
    @property
    def needs_fit(self) -> bool:
        return self.refit

    def fit(self, batches: Iterable[Any]) -> None:
        """Learn the palette from a stream of RGBA batches (any shapes ending in 4)."""
        counter = quantize.ColorCounter()
        for batch in quantize.iter_batches(batches):
            if batch.dtype != np.uint8 or batch.shape[-1] != 4:
                raise ArtforgeError(f"palette codec expects uint8 RGBA images, got {batch.dtype} {batch.shape}")
            counter.add(batch)
        keys, counts = counter.result()
        if len(keys) == 0:
            raise ArtforgeError(f"codec {self.spec}: the data has no visible pixels to learn a palette from")
        colors = quantize.reduce_colors(keys, counts, self.auto_n or DEFAULT_AUTO)
        self._set_colors(colors)
        index = self._need()
        _, found = index.lookup(keys)
        moved_keys, moved_counts = keys[~found], counts[~found]
        moved = int(moved_counts.sum())
        mean_de, sample = 0.0, {}
        if moved:
            sampled = len(moved_keys) > DELTA_E_EXACT
            if sampled:  # nearest colours for millions of colours cost seconds: a reproducible estimate
                pick = np.random.default_rng(0).choice(len(moved_keys), DELTA_E_SAMPLE, p=moved_counts / moved)
                moved_keys, moved_counts = moved_keys[pick], np.ones(DELTA_E_SAMPLE, np.int64)
            rgba = quantize.unpack(moved_keys)
            lab = srgb_to_lab(rgba[:, :3])
            de = np.sqrt(((lab - index.lab[index.nearest_lab(lab, rgba[:, 3])]) ** 2).sum(1))
            mean_de = float((de * moved_counts).sum() / moved_counts.sum())
            if sampled:
                sample = {"moved_delta_e_sample": DELTA_E_SAMPLE,
                          "moved_delta_e_stderr": round(float(de.std(ddof=1) / np.sqrt(len(de))), 3)}
        self.fit_stats = {"images": counter.images, "pixels": counter.pixels, "visible_pixels": int(counts.sum()),
                          "distinct_colors": len(keys), "palette_colors": len(colors), "moved_pixels": moved,
                          "moved_mean_delta_e": round(mean_de, 3), **sample}

    def fit_summary(self) -> str:
        """One line on what the last fit did (how many pixels had to move to a palette colour)."""
        s = self.fit_stats
        if not s:
            return f"{self.spec}: {self.vocab_size - 1} colours" if self.colors is not None else self.spec
        pct = 100.0 * s["moved_pixels"] / max(1, s["visible_pixels"])
        de = f"mean delta E {s['moved_mean_delta_e']:.2f}"
        if s.get("moved_delta_e_sample"):
            de += f" +/- {s['moved_delta_e_stderr']:.2f}, estimated from {s['moved_delta_e_sample']:,} sampled pixels"
        return (f"{s['palette_colors']} colours from {s['distinct_colors']:,} distinct colours in "
                f"{s['visible_pixels']:,} visible pixels; {s['moved_pixels']:,} pixels ({pct:.1f}%) moved to "
                f"the nearest palette colour ({de})")

    # -- the work -------------------------------------------------------------------------------
    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 4:
            raise ArtforgeError(f"palette codec expects uint8 RGBA images, got {images.dtype} {images.shape}")
        return images

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 4) or (H, W, 4) RGBA -> palette indices; other colours go to the nearest entry."""
        idx, _ = self.encode_counted(images)
        return idx

    def encode_counted(self, images: np.ndarray) -> tuple[np.ndarray, int]:
        """Like ``encode``, plus the number of pixels that were not palette colours."""
        images = self._check(images)
        idx, moved = self._need().encode(images)
        return idx.astype(self.token_dtype, copy=False), moved

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        tokens = self.check_tokens(tokens)
        return self._need().palette[tokens.astype(np.intp)]

    def convert(self, images: np.ndarray, **options: Any) -> np.ndarray:
        """Map any pictures onto the palette, with ``dither`` = none | bayer | floyd."""
        dither = options.pop("dither", None) or "none"
        if options:
            raise ArtforgeError(f"codec {self.spec} has no option(s) {', '.join('--' + k for k in options)}")
        mode = DITHER.get(str(dither).lower())
        if mode is None:
            raise ArtforgeError(f"unknown dither {dither!r}; use none, bayer or floyd")
        images = self._check(images)
        squeeze = images.ndim == 3
        batch = images[None] if squeeze else images.reshape(-1, *images.shape[-3:])
        index = self._need()
        if mode == "none":
            idx, _ = index.encode(batch)
        elif mode == "bayer":
            idx = quantize.dither_bayer(batch, index)
        else:
            idx = quantize.dither_floyd(batch, index)
        idx = idx.astype(self.token_dtype, copy=False)
        return idx[0] if squeeze else idx.reshape(images.shape[:-1])
