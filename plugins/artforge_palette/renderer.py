"""The palette renderer: a token is one pixel of its palette colour; soft tokens mix colours."""

from __future__ import annotations


def make_renderer(codec):
    import torch

    from artforge.renderers import ColorTableRenderer

    return ColorTableRenderer(torch.from_numpy(codec.palette.copy()))
