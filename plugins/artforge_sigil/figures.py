"""The corruption the sigil denoiser learns to undo, and the 3x3 median filter it is measured against."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def corrupt(tokens: torch.Tensor, noise: float, holes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each pixel with probability ``noise``, then blank ``holes`` squares (side H/8) per image.

    The flips are the speckle a generator leaves; the blanked squares are broken strokes."""
    B, H, W = tokens.shape
    dev = tokens.device
    out = tokens.clone()
    if noise > 0:
        flip = torch.rand(B, H, W, generator=generator, device=dev) < noise
        out = torch.where(flip, 1 - out, out)
    side = max(1, H // 8)
    if holes > 0:
        ys = torch.randint(0, H - side + 1, (B, holes, 1, 1), generator=generator, device=dev)
        xs = torch.randint(0, W - side + 1, (B, holes, 1, 1), generator=generator, device=dev)
        r = torch.arange(H, device=dev).view(1, 1, H, 1)
        c = torch.arange(W, device=dev).view(1, 1, 1, W)
        hole = ((r >= ys) & (r < ys + side) & (c >= xs) & (c < xs + side)).any(1)
        out = out.masked_fill(hole, 0)
    return out


def median3(tokens: torch.Tensor) -> torch.Tensor:
    """3x3 median filter of binary grids (a majority of the 9 pixels; edges replicated)."""
    x = F.pad(tokens.float()[:, None], (1, 1, 1, 1), mode="replicate")
    return (F.avg_pool2d(x, 3, stride=1)[:, 0] > 0.5).to(tokens.dtype)
