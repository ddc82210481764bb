"""The ``braille`` codec: every 2x4 block of pixels becomes one Braille character (U+2800..U+28FF).

A token is the character's 8-bit dot pattern: bit ``k`` is set when dot ``k+1`` is inked.
Dots are numbered the Unicode way: 1 2 3 7 down the left column, 4 5 6 8 down the right.
A pixel is inked when it is dark (luma < threshold) and opaque (alpha >= 128).
Specs: ``braille`` (threshold 128) or ``braille:T`` (threshold T, 1-255).
"""

from __future__ import annotations

import numpy as np

from artforge.codecs import Codec
from artforge.errors import ArtforgeError

# bit of each pixel of a 4-row x 2-column cell
BITS = np.array([[0, 3], [1, 4], [2, 5], [6, 7]])
WEIGHTS = (1 << BITS).astype(np.int64)


class BrailleCodec(Codec):
    name = "braille"
    description = "2x4 pixel blocks as Unicode Braille dot patterns (one token per character)"
    spec_help = "braille or braille:THRESHOLD (luma below it is ink)"

    def __init__(self, threshold: int = 128):
        if not 1 <= threshold <= 255:
            raise ArtforgeError(f"bad codec spec 'braille:{threshold}': threshold must be 1-255")
        self.threshold = threshold
        self.spec = "braille" if threshold == 128 else f"braille:{threshold}"
        self.vocab_size = 256

    @classmethod
    def from_spec(cls, args: str) -> BrailleCodec:
        if not args:
            return cls()
        if not args.isdigit():
            raise ArtforgeError(f"bad codec spec 'braille:{args}': expected a threshold number")
        return cls(int(args))

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 4) RGBA -> (N, ceil(H/4), ceil(W/2)) dot patterns (edges padded blank)."""
        images = np.asarray(images)
        n, h, w = images.shape[:3]
        rgb = images[..., :3].astype(np.float32)
        luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        ink = (luma < self.threshold) & (images[..., 3] >= 128)
        H, W = -(-h // 4) * 4, -(-w // 2) * 2
        ink = np.pad(ink, ((0, 0), (0, H - h), (0, W - w)))
        cells = ink.reshape(n, H // 4, 4, W // 2, 2).transpose(0, 1, 3, 2, 4)  # (n, rows, cols, 4, 2)
        return (cells * WEIGHTS).sum((-1, -2)).astype(np.uint8)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Dot patterns -> black dots on white, (N, 4*rows, 2*cols, 4) RGBA."""
        t = self.check_tokens(tokens).astype(np.int64)
        n, r, c = t.shape
        dots = (t[..., None, None] >> BITS) & 1  # (n, r, c, 4, 2)
        ink = dots.transpose(0, 1, 3, 2, 4).reshape(n, r * 4, c * 2).astype(bool)
        out = np.full((n, r * 4, c * 2, 4), 255, np.uint8)
        out[ink, :3] = 0
        return out

    def to_text(self, tokens: np.ndarray) -> str:
        """One (rows, cols) token grid as Braille text."""
        return "\n".join("".join(chr(0x2800 + int(v)) for v in row) for row in np.asarray(tokens))
