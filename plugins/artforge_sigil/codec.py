"""The ``binary`` codec: one bit per pixel, 1 = ink (dark and opaque), 0 = background.

Specs: ``binary`` (luma threshold 128) or ``binary:T``. Decoding draws black ink on white.
"""

from __future__ import annotations

import numpy as np

from artforge.codecs import Codec
from artforge.errors import ArtforgeError

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


class BinaryCodec(Codec):
    name = "binary"
    description = "Binary bitmaps: 1 token per pixel, ink (dark, opaque) or background"
    spec_help = "binary or binary:THRESHOLD (luma below it is ink)"
    token_ndim = 2  # (H, W) per item

    def __init__(self, threshold: int = 128):
        if not 1 <= threshold <= 255:
            raise ArtforgeError(f"bad codec spec 'binary:{threshold}': threshold must be 1-255")
        self.threshold = threshold
        self.spec = "binary" if threshold == 128 else f"binary:{threshold}"
        self.vocab_size = 2

    @classmethod
    def from_spec(cls, args: str) -> BinaryCodec:
        if not args:
            return cls()
        if not args.isdigit():
            raise ArtforgeError(f"bad codec spec 'binary:{args}': expected a threshold number")
        return cls(int(args))

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 4) or (H, W, 4) uint8 RGBA -> (N, H, W) or (H, W) bits; anything else is refused,
        as hsv and palette refuse it (an RGB array crashed on its missing alpha, and float or 16-bit
        pictures were thresholded as if they were bytes: 0..1 floats came out all ink)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 4:
            raise ArtforgeError(f"binary codec expects uint8 RGBA images, got {images.dtype} {images.shape}")
        luma = images[..., :3].astype(np.float32) @ LUMA
        return ((luma < self.threshold) & (images[..., 3] >= 128)).astype(np.uint8)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        ink = self.check_tokens(tokens).astype(bool)
        out = np.full(ink.shape + (4,), 255, np.uint8)
        out[ink, :3] = 0
        return out
