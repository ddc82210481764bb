"""The ``saml`` codec: a Symbol Art as a fixed number of layer rows of 13 integer tokens.

Specs (options after the layer count, separated by commas)::

    saml                 up to 225 layers (the game's limit)
    saml:64              up to 64 layers; `artforge convert` fits 64 layers to a picture
    saml:64,steps=400    fit with 400 gradient steps (default 200; 0 keeps the quadtree mosaic)
    saml,symbols=DIR     draw symbols with DIR/<id>.png pictures instead of artforge's stand-ins
    saml:16,net=RUN      start the fit from a trained saml-net's layers (RUN: its run folder or a
                         checkpoint) instead of the quadtree mosaic; with steps=0 they are kept as is

A path (DIR, RUN) writes a comma as ``\\,``, a backslash as ``\\\\`` and may write a space as ``\\s``,
as the ascii codec's options do (``saml,symbols=art\\,2024``); the canonical spec escapes them so.

Tokens per layer (row 0 is drawn in front; empty rows are all zero and come last)::

    symbol id + 1 (0 = empty), r, g, b (0..255), alpha step (0..7), then the corners
    ltx, lty, lbx, lby, rtx, rty, rbx, rby, each + 128 (0..255)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from artforge.codecs import Codec, escape_spec, split_spec_options, unescape_spec
from artforge.errors import ArtforgeError, BadInput
from artforge_saml.samlfile import ALPHA_STEPS, FIELDS, MAX_SYMBOL, SymbolArt, format_saml, read_saml

MAX_LAYERS = 225
WIDTH, HEIGHT = 192, 96
OFFSET = 128
#: the largest token each column may hold
FIELD_MAX = np.array([MAX_SYMBOL + 1, 255, 255, 255, ALPHA_STEPS] + [255] * 8)


def layers_to_tokens(layers: np.ndarray, rows: int) -> np.ndarray:
    """``(n, 13)`` file values (see :mod:`artforge_saml.samlfile`) -> ``(rows, 13)`` tokens."""
    layers = np.asarray(layers, np.int64).reshape(-1, len(FIELDS))
    out = np.zeros((rows, len(FIELDS)), np.int64)
    out[: len(layers), 0] = layers[:, 0] + 1
    out[: len(layers), 1:5] = layers[:, 1:5]
    out[: len(layers), 5:] = layers[:, 5:] + OFFSET
    return out


def tokens_to_layers(tokens: np.ndarray) -> np.ndarray:
    """``(rows, 13)`` tokens -> ``(n, 13)`` file values of the non-empty rows."""
    t = np.asarray(tokens, np.int64)
    t = t[t[:, 0] > 0]
    out = t.copy()
    out[:, 0] -= 1
    out[:, 5:] -= OFFSET
    return out


class SamlCodec(Codec):
    name = "saml"
    description = "PSO2 Symbol Art (.saml): layers of tinted symbol quads, 13 tokens per layer"
    spec_help = "saml or saml:LAYERS (1-225), then options: steps=N, symbols=DIR, net=RUN; e.g. saml:64"
    input_kind = "saml"
    input_suffixes = {".saml"}
    native_suffixes = {".saml"}

    def __init__(self, layers: int = MAX_LAYERS, steps: int = 200, symbols: str | None = None,
                 net: str | None = None):
        if not 1 <= layers <= MAX_LAYERS:
            raise ArtforgeError(f"bad codec spec: saml holds 1 to {MAX_LAYERS} layers, got {layers}")
        if not 0 <= steps <= 100_000:
            raise ArtforgeError(f"bad codec spec: steps must be 0..100000, got {steps}")
        if symbols is not None and not os.path.isdir(symbols):
            raise ArtforgeError(f"bad codec spec: symbols={symbols} is not a folder")
        if net is not None and not os.path.exists(net):
            raise ArtforgeError(f"bad codec spec: net={net}: no such run folder or checkpoint")
        self.layers, self.steps, self.symbols, self.net = layers, steps, symbols, net
        opts = [str(layers)] if layers != MAX_LAYERS else []
        opts += [f"steps={steps}"] if steps != 200 else []
        opts += [f"symbols={escape_spec(symbols)}"] if symbols else []  # a comma in a path stays in it
        opts += [f"net={escape_spec(net)}"] if net else []
        self.spec = "saml" + (":" + ",".join(opts) if opts else "")
        self.vocab_size = MAX_SYMBOL + 2
        self.token_shape = (layers, len(FIELDS))
        self._renderer = None

    @classmethod
    def from_spec(cls, args: str) -> SamlCodec:
        kw: dict[str, Any] = {}
        # split on unescaped commas only, as the ascii codec does: a path may hold a comma (written \,)
        for part in [p.strip() for p in split_spec_options(args) if p.strip()]:
            key, eq, value = part.partition("=")
            if not eq and key.isdigit():
                kw["layers"] = int(key)
            elif key == "steps" and value.isdigit():
                kw["steps"] = int(value)
            elif key in ("symbols", "net") and value:
                kw[key] = unescape_spec(value)
            else:
                raise ArtforgeError(f"bad codec spec 'saml:{args}': unknown option {part!r} "
                                    "(expected LAYERS, steps=N, symbols=DIR or net=RUN)")
        return cls(**kw)

    # -- reading .saml files ----------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> SymbolArt:
        return read_saml(path)

    def read(self, path: str | os.PathLike, size: int | None = None, resample: str = "lanczos") -> np.ndarray:
        art = self.load(path)
        try:
            return self.prepare(art, size, resample)
        except BadInput:
            raise
        except ArtforgeError as exc:
            raise BadInput(path, str(exc)) from None

    def check_read_options(self, size: int | None = None, resample: str = "lanczos") -> None:
        if size is not None:
            raise ArtforgeError("--size fits pictures; a Symbol Art's canvas is fixed (192x96)")

    def prepare(self, payload: Any, size: int | None = None, resample: str = "lanczos") -> np.ndarray:
        self.check_read_options(size, resample)
        layers = payload.layers if isinstance(payload, SymbolArt) else np.asarray(payload)
        if len(layers) > self.layers:
            raise ArtforgeError(f"{len(layers)} visible layers, more than codec {self.spec} holds ({self.layers})")
        return layers_to_tokens(layers, self.layers)

    def stack(self, items: list[Any]) -> np.ndarray:
        """Prepared pieces (token arrays from :meth:`read`) or parsed files -> ``(N, LAYERS, 13)``."""
        out = [self.prepare(i) if isinstance(i, SymbolArt) else np.asarray(i) for i in items]
        if any(t.shape != self.token_shape for t in out):
            raise ArtforgeError(f"pieces must be {self.token_shape[0]}x13 tokens for codec {self.spec}")
        return np.stack(out) if out else np.zeros((0, *self.token_shape), np.int64)

    # -- the work ---------------------------------------------------------------------------------
    def encode(self, batch: Any) -> np.ndarray:
        """Layer rows (a stacked ``(N, LAYERS, 13)`` batch, or a list of parsed files) -> tokens."""
        if isinstance(batch, np.ndarray) and batch.shape[1:] == self.token_shape:
            tokens = batch
        else:
            tokens = self.stack([batch] if isinstance(batch, SymbolArt) else list(batch))
        return self.check_tokens(tokens).astype(self.token_dtype)

    def check_tokens(self, tokens: np.ndarray, source: str = "tokens") -> np.ndarray:
        tokens = super().check_tokens(tokens, source)
        if tokens.shape[-1:] != (len(FIELDS),):
            raise ArtforgeError(f"{source}: saml tokens must be (N, layers, 13), got shape {tokens.shape}")
        over = (tokens.reshape(-1, len(FIELDS)) > FIELD_MAX).any(0)
        if over.any():
            raise ArtforgeError(f"{source}: token values out of range in column(s) "
                                f"{', '.join(f for f, o in zip(FIELDS, over, strict=True) if o)}")
        return tokens

    @property
    def renderer(self):
        if self._renderer is None:
            from artforge_saml.renderer import SamlRenderer

            self._renderer = SamlRenderer(WIDTH, HEIGHT, symbol_dir=self.symbols)
        return self._renderer

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """``(N, LAYERS, 13)`` tokens -> ``(N, 96, 192, 4)`` RGBA pictures of the canvas."""
        import torch

        t = self.check_tokens(tokens)
        single = t.ndim == 2
        t = t[None] if single else t
        out = []
        with torch.no_grad():
            for piece in t:  # one at a time: a piece's coverage (layers x 96 x 192) stays in cache
                img = self.renderer(torch.from_numpy(piece[None].astype(np.int64)))
                out.append((img.clamp(0, 1) * 255).round().to(torch.uint8).movedim(1, -1).numpy())
        imgs = np.concatenate(out) if out else np.zeros((0, HEIGHT, WIDTH, 4), np.uint8)
        return imgs[0] if single else imgs

    def convert(self, images: np.ndarray, **options: Any) -> np.ndarray:
        """Fit ``LAYERS`` layers to each RGBA picture (see :mod:`artforge_saml.fit`)."""
        import time

        from artforge_saml.fit import fit_picture

        if options:
            raise ArtforgeError(f"codec {self.spec} has no option(s) {', '.join('--' + k for k in options)}")
        t = time.perf_counter()
        if self.net is None:
            self._fits = [fit_picture(np.asarray(img), self.layers, self.steps, WIDTH, HEIGHT) for img in images]
        else:
            self._fits = self._net_fits(images)
        self._fit_seconds = time.perf_counter() - t
        return np.stack([r.tokens for r in self._fits]).astype(self.token_dtype)

    def _net_fits(self, images: Any) -> list:
        """saml-net's layers for each picture (made square first: the net sees S x S pictures that
        fill the canvas's middle 96x96), then the fit from there."""
        import torch

        from artforge.engine.run import load_run
        from artforge_saml.fit import fit_picture, place

        run = load_run(self.net, expect_model="saml-net")
        net = run.model
        if net.config.layers > self.layers:
            raise ArtforgeError(f"net={self.net} draws {net.config.layers} layers, more than codec "
                                f"{self.spec} holds (use saml:{net.config.layers} or more)")
        fits = []
        for img in images:
            img = np.asarray(img)
            side = max(img.shape[:2])
            square = np.zeros((side, side, 4), np.uint8)
            y0, x0 = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
            square[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
            small, _ = place(square, net.S, net.S)
            with torch.no_grad():
                rows = net.layers_for(torch.from_numpy(small).permute(2, 0, 1)[None])[0].numpy()
            fits.append(fit_picture(square, self.layers, self.steps, WIDTH, HEIGHT, start=rows))
        return fits

    def convert_report(self) -> str | None:
        fits = getattr(self, "_fits", None)
        if not fits:
            return None
        used = ", ".join(str(r.layers) for r in fits)
        fit = ", ".join(f"{r.psnr_fit:.1f}" for r in fits)
        start = ", ".join(f"{r.psnr_baseline:.1f}" for r in fits)
        began = "saml-net" if self.net else "quadtree"
        return f"{used} layers, PSNR {fit} dB ({began} start {start} dB), {self._fit_seconds:.1f} s"

    def write_native(self, tokens: np.ndarray, path: str | os.PathLike) -> None:
        """One piece as a .saml file (reading it back gives the same tokens)."""
        from pathlib import Path

        from artforge.fsutil import atomic_write_text

        t = self.check_tokens(np.asarray(tokens).reshape(self.token_shape))
        atomic_write_text(path, format_saml(tokens_to_layers(t), name=Path(path).stem, width=WIDTH, height=HEIGHT))

