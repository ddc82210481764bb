"""Training-time augmentation of token grids shared by the plugins' models (torch imported by callers)."""

from __future__ import annotations

import torch


def augment(tokens: torch.Tensor, flip: bool, turn: bool = False) -> torch.Tensor:
    """Each (..., H, W) grid of the batch independently: a horizontal flip with probability 1/2 (flip),
    then 0-3 quarter turns (turn, square grids only); together the 8 symmetries of the square."""
    B = tokens.shape[0]
    if flip:
        tokens = torch.where(torch.rand(B, 1, 1, device=tokens.device) < 0.5, tokens.flip(-1), tokens)
    if turn:
        k = torch.randint(4, (B, 1, 1), device=tokens.device)
        turned = tokens
        for q in (1, 2, 3):
            turned = torch.where(k == q, tokens.rot90(q, (-2, -1)), turned)
        tokens = turned
    return tokens
