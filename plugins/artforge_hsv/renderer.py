"""The hsv renderer: each token is one pixel of its bin-centre colour (soft = mixed colours)."""

from __future__ import annotations

import numpy as np


def make_renderer(codec):
    import torch

    from artforge.renderers import ColorTableRenderer

    return ColorTableRenderer(torch.from_numpy(codec.decode(np.arange(codec.vocab_size))))
