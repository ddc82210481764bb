"""The ``hsvHSV`` codec: hue, saturation and value quantised and packed into one token per pixel.

``hsv544`` gives 5 bits of hue, 4 of saturation, 4 of value: tokens ``0 .. 8191`` are colours
and token ``8192`` is "transparent" (alpha < 128). Packing is ``(h << (S+V)) | (s << V) | v``.

Quantisation:
- hue is circular: ``h_q = round(h * 2^H) mod 2^H``, so 359 degrees and 0 degrees share a bin
  and bins are centred on ``k * 360 / 2^H`` degrees;
- saturation and value: ``round(x * (2^B - 1))``, so black, white and greys are exact.
Rounding is done in exact integer arithmetic on the 8-bit inputs (halves round up), so there are
no floating-point ties.

Decoding maps a token to the RGB of its bin centre, rounded to 8 bits. Rounding can move a
colour's hue across a bin edge when its chroma is only a few RGB levels, so a token whose decoded
colour does not encode back to itself is replaced, at encode time, by the token its colour does
settle on (``canon``), and decoding shows every token in the colour of its canonical token. That
makes encode -> decode -> encode an exact fixed point for every input, and decode -> encode ->
decode exact for every token grid.

All work is table lookups on uint8 RGB; large batches use one 2^24-entry table built once per
process and bit width (about 0.3 s, 32 MiB).
"""

from __future__ import annotations

import re
import sys
import threading

import numpy as np

from artforge.codecs import Codec
from artforge.errors import ArtforgeError

_SPEC = re.compile(r"^(\d)(\d)(\d)$")
_FULL_LUT_MIN_PIXELS = 1 << 20  # below this many pixels the direct path is cheaper than a build
_cache: dict[tuple[int, int, int], dict[str, np.ndarray]] = {}
_lock = threading.Lock()


def rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float RGB in [0, 1] (..., 3) -> h, s, v in [0, 1) x [0, 1] x [0, 1] (float64)."""
    rgb = np.asarray(rgb, np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    c = mx - mn
    safe = np.where(c > 0, c, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = np.where(c > 0, h / 6.0, 0.0)
    s = np.where(mx > 0, c / np.where(mx > 0, mx, 1.0), 0.0)
    return h, s, mx


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """h, s, v in [0, 1] -> float RGB in [0, 1] (..., 3)."""
    h6 = (np.asarray(h, np.float64) % 1.0) * 6.0
    i = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices_r = [v, q, p, p, t, v]
    choices_g = [t, v, v, q, p, p]
    choices_b = [p, p, t, v, v, q]
    r = np.choose(i, choices_r)
    g = np.choose(i, choices_g)
    b = np.choose(i, choices_b)
    return np.stack([r, g, b], -1)


class HSVCodec(Codec):
    name = "hsv"
    description = "HSV quantised and packed into one integer token per pixel, plus a transparent token"
    spec_help = "hsvHSV: bits of hue, saturation, value, 1-8 each, 16 at most in all (hsv544, hsv433)"
    token_ndim = 2  # (H, W) per item

    def __init__(self, hbits: int, sbits: int, vbits: int):
        for b in (hbits, sbits, vbits):
            if not 1 <= b <= 8:
                raise ArtforgeError(
                    f"bad codec spec 'hsv{hbits}{sbits}{vbits}': each bit width must be 1-8"
                )
        if hbits + sbits + vbits > 16:
            raise ArtforgeError(
                f"bad codec spec 'hsv{hbits}{sbits}{vbits}': {hbits + sbits + vbits} bits in all, 16 at most"
            )
        self.bits = (hbits, sbits, vbits)
        self.spec = f"hsv{hbits}{sbits}{vbits}"
        self.n_colors = 1 << (hbits + sbits + vbits)
        self.transparent = self.n_colors
        self.vocab_size = self.n_colors + 1

    @classmethod
    def from_spec(cls, args: str) -> HSVCodec:
        m = _SPEC.match(args.replace(",", "").replace(":", ""))
        if not m:
            raise ArtforgeError(
                f"bad codec spec 'hsv{args}': expected hsv followed by three bit widths, e.g. hsv544"
            )
        return cls(*(int(x) for x in m.groups()))

    def config(self) -> dict:
        h, s, v = self.bits
        return {"codec": "hsv", "spec": self.spec, "args": f"{h}{s}{v}", "transparent": self.transparent}

    # -- tables ---------------------------------------------------------------------------------
    def _tables(self) -> dict[str, np.ndarray]:
        with _lock:
            if self.bits not in _cache:
                _cache[self.bits] = self._build_tables()
            return _cache[self.bits]

    def _build_tables(self) -> dict[str, np.ndarray]:
        hb, sb, vb = self.bits
        H, S, V = 1 << hb, (1 << sb) - 1, (1 << vb) - 1
        # Exact integer rounding (halves round up): round(a / b) = (2a + b) // (2b).
        m = np.arange(256, dtype=np.int64)
        vq = (2 * m * V + 255) // 510
        c = np.arange(256, dtype=np.int64)[:, None]
        mx = np.arange(256, dtype=np.int64)[None, :]
        sq = np.where(mx > 0, (2 * c * S + mx) // np.maximum(2 * mx, 1), 0)
        # hue * 6 = 2 * sector + d / c, taken mod 6, so hue_q = round((2 sector c + d) mod 6c * H / 6c) mod H
        d = np.arange(-255, 256, dtype=np.int64)[None, :, None]
        cc = np.arange(256, dtype=np.int64)[None, None, :]
        sector = np.arange(3, dtype=np.int64)[:, None, None]
        six_c = np.maximum(6 * cc, 1)
        num = ((2 * sector * cc + d) % six_c) * H
        hq = np.where(cc > 0, ((2 * num + six_c) // (2 * six_c)) % H, 0)
        tables = {"vq": vq, "sq": sq.ravel(), "hq": hq.ravel()}
        # decode: the bin centre of every colour token, rounded to 8-bit RGB
        tok = np.arange(self.n_colors)
        th, ts, tv = tok >> (sb + vb), (tok >> vb) & S, tok & V
        rgb = hsv_to_rgb(th / H, ts / S, tv / V)
        rgb = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
        # canon: follow token -> decode -> encode until it settles
        step = self._quantise(rgb, tables)
        canon = step.copy()
        for _ in range(64):
            nxt = step[canon]
            if np.array_equal(nxt, canon):
                break
            canon = nxt
        if not np.array_equal(step[canon], canon):  # pragma: no cover - checked for every width
            raise RuntimeError(f"{self.spec}: token canonicalisation did not converge")
        dec = np.zeros((self.vocab_size, 4), np.uint8)
        dec[: self.n_colors, :3] = rgb[canon]  # any token (even one a model made up) shows a stable colour
        dec[: self.n_colors, 3] = 255
        tables["canon"] = canon.astype(self.token_dtype)
        tables["decode"] = dec
        return tables

    def _quantise(self, rgb: np.ndarray, t: dict[str, np.ndarray]) -> np.ndarray:
        """(P, 3) uint8 RGB -> raw packed colour tokens (before canonicalisation), int64."""
        hb, sb, vb = self.bits
        r, g, b = (rgb[:, i].astype(np.int32) for i in range(3))
        mx = np.maximum(np.maximum(r, g), b)
        mn = np.minimum(np.minimum(r, g), b)
        c = mx - mn
        is_r = mx == r
        is_g = ~is_r & (mx == g)
        d = np.where(is_r, g - b, np.where(is_g, b - r, r - g))
        sector = np.where(is_r, 0, np.where(is_g, 1, 2))
        hq = t["hq"][(sector * 511 + d + 255) * 256 + c]
        sq = t["sq"][c * 256 + mx]
        vq = t["vq"][mx]
        return (hq << (sb + vb)) | (sq << vb) | vq

    def _full_lut(self) -> np.ndarray:
        t = self._tables()
        with _lock:
            if "full" not in t:
                full = np.empty(1 << 24, self.token_dtype)
                block = 1 << 20
                for start in range(0, 1 << 24, block):
                    idx = np.arange(start, start + block, dtype=np.uint32)
                    # index = r | g << 8 | b << 16: an RGBA pixel viewed as little-endian uint32
                    rgb = np.stack([idx & 255, (idx >> 8) & 255, (idx >> 16) & 255], -1).astype(np.uint8)
                    full[start : start + block] = t["canon"][self._quantise(rgb, t)]
                t["full"] = full
            return t["full"]

    # -- the contract ---------------------------------------------------------------------------
    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 4) or (H, W, 4) uint8 RGBA -> (N, H, W) or (H, W) tokens; anything else is refused, as
        palette and binary refuse it (a flat (P, 4) list of pixels is not a picture)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 4:
            raise ArtforgeError(f"hsv codec expects uint8 RGBA images, got {images.dtype} {images.shape}")
        shape = images.shape[:-1]
        flat = np.ascontiguousarray(images).reshape(-1, 4)
        if flat.shape[0] >= _FULL_LUT_MIN_PIXELS:
            if sys.byteorder == "little":
                packed = flat.view(np.uint32).ravel()
                tok = np.take(self._full_lut(), packed & 0xFFFFFF)
                transparent = packed < (128 << 24)
            else:  # pragma: no cover - big-endian machines
                idx = flat[:, 0].astype(np.uint32) | (flat[:, 1].astype(np.uint32) << 8)
                tok = np.take(self._full_lut(), idx | (flat[:, 2].astype(np.uint32) << 16))
                transparent = flat[:, 3] < 128
        else:
            t = self._tables()
            tok = t["canon"][self._quantise(flat[:, :3], t)]
            transparent = flat[:, 3] < 128
        tok[transparent] = self.transparent
        return tok.reshape(shape)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        tokens = self.check_tokens(tokens)
        return self._tables()["decode"][tokens.astype(np.int64)]

    def unpack(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colour tokens -> (hue, saturation, value) bin indices (transparent gives zeros)."""
        hb, sb, vb = self.bits
        t = np.where(np.asarray(tokens) >= self.n_colors, 0, tokens).astype(np.int64)
        return t >> (sb + vb), (t >> vb) & ((1 << sb) - 1), t & ((1 << vb) - 1)
