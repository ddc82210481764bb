"""The renderer contract: tokens, hard or soft, to pixels, differentiably, in torch.

A renderer is an ``nn.Module`` called as ``renderer(x)`` where ``x`` is either a LongTensor of
tokens ``(B, *token_shape)`` or probabilities over the vocabulary ``(B, V, *token_shape)``; it
returns ``(B, C, H, W)`` floats in ``[0, 1]`` (C = 4 for RGBA, 1 for grey). On one-hot input it
equals the hard render exactly. Plugins register a factory ``factory(codec) -> Renderer`` under
their codec family name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ColorTableRenderer(nn.Module):
    """For codecs where each token is one pixel of a fixed colour (hsv, palette).

    The soft render is the probability-weighted mix of the token colours, ``probs @ table``.
    """

    def __init__(self, colors: torch.Tensor):
        super().__init__()
        self.register_buffer("table", colors.float() / 255.0 if colors.dtype == torch.uint8 else colors.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
            img = self.table[x.long()]  # (B, H, W, C)
        else:
            img = torch.einsum("bv...,vc->b...c", x, self.table)
        return img.movedim(-1, 1).contiguous()


def one_hot(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, *shape) tokens -> (B, V, *shape) float one-hot (the layout renderers take)."""
    return F.one_hot(tokens.long(), vocab).movedim(-1, 1).float()


def get_renderer(codec) -> nn.Module:
    """The registered renderer for a codec's family."""
    from artforge.plugins import lookup

    return lookup("renderers", codec.name).obj(codec)
