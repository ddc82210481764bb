"""Training-time augmentation of token grids shared by the plugins' models (torch imported by callers)."""

from __future__ import annotations

import torch


def augment(tokens: torch.Tensor, flip: bool, turn: bool = False, shift: int = 0) -> torch.Tensor:
    """Each (B, ..., H, W) grid of the batch independently: a horizontal flip with probability 1/2
    (flip), then 0-3 quarter turns (turn, square grids only) -- together the 8 symmetries of the
    square -- then a circular shift by up to ``shift`` pixels each way along each axis, uniform.

    Circular, so no pixel is invented: floor and wall tiles are seamless, and sprites on
    transparency mostly wrap transparent borders. Shifts also move content off the encoder's
    stride grid, which the symmetries alone never do."""
    B = tokens.shape[0]
    if flip:
        tokens = torch.where(torch.rand(B, 1, 1, device=tokens.device) < 0.5, tokens.flip(-1), tokens)
    if turn:
        k = torch.randint(4, (B, 1, 1), device=tokens.device)
        turned = tokens
        for q in (1, 2, 3):
            turned = torch.where(k == q, tokens.rot90(q, (-2, -1)), turned)
        tokens = turned
    if shift:
        tokens = _roll_each(tokens, shift)
    return tokens


def _roll_each(tokens: torch.Tensor, shift: int) -> torch.Tensor:
    """Roll each grid of the batch by its own (dy, dx), each uniform in [-shift, shift]."""
    B, H, W = tokens.shape[0], tokens.shape[-2], tokens.shape[-1]
    mid = [1] * (tokens.dim() - 3)
    d = torch.randint(-shift, shift + 1, (B, 2), device=tokens.device)
    rows = (torch.arange(H, device=tokens.device) - d[:, :1]) % H  # (B, H): source row of each row
    cols = (torch.arange(W, device=tokens.device) - d[:, 1:]) % W
    tokens = tokens.gather(-2, rows.view(B, *mid, H, 1).expand_as(tokens))
    return tokens.gather(-1, cols.view(B, *mid, 1, W).expand_as(tokens))
