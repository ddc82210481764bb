"""The renderer contract: tokens, hard or soft, to pixels, differentiably, in torch.

A renderer is an ``nn.Module`` called as ``renderer(x)`` where ``x`` is either a LongTensor of
tokens ``(B, *token_shape)`` or probabilities over the vocabulary ``(B, V, *token_shape)``; it
returns ``(B, C, H, W)`` floats in ``[0, 1]`` (C = 4 for RGBA, 1 for grey). On one-hot input it
equals the hard render exactly. Plugins register a factory ``factory(codec) -> Renderer`` under
their codec family name.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artforge.errors import ArtforgeError, ContractError, first_line


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
    """The registered renderer for a codec's family; a factory that fails is named (a ContractError),
    not taken for a problem with the tokens about to be rendered."""
    from artforge.plugins import lookup, registry

    renderers = registry("renderers")
    if codec.name not in renderers and codec.name not in renderers.conflicts and codec.name not in renderers.refused:
        # not an unknown name the user mistyped: the codec's plugin registers no renderer for it
        codecs = registry("codecs")
        whose = f" (plugin {codecs.entries[codec.name].plugin!r} registers none)" if codec.name in codecs else ""
        raise ArtforgeError(f"codec {codec.name} has no renderer{whose}; `artforge decode` makes pictures with "
                            f"the codec itself: artforge decode TOKENS -o PICTURE")
    factory = lookup("renderers", codec.name).obj
    try:
        return factory(codec)
    except (ArtforgeError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - plugin code: whatever it raises is its own failure
        raise ContractError(f"renderer {codec.name} could not be made for codec {codec.spec} "
                            f"({type(exc).__name__}: {first_line(exc, 160)})") from None


def render_tokens(codec, tokens: np.ndarray, renderer: nn.Module | None = None) -> np.ndarray:
    """Hard-render tokens that already passed the codec's checks into ``(N, H, W, 3|4)`` uint8 pictures.
    The renderer's own ArtforgeError passes through (it judged the tokens); a crash, or anything but
    ``(N, C, H, W)`` floats with C 1, 3 or 4, is the renderer's bug: a ContractError naming it."""
    renderer = get_renderer(codec) if renderer is None else renderer
    who = f"renderer {codec.name}"
    try:
        with torch.no_grad():
            img = renderer(torch.from_numpy(np.asarray(tokens).astype(np.int64)))
    except (ArtforgeError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ContractError(f"{who} failed ({type(exc).__name__}: {first_line(exc, 160)}) on tokens of shape "
                            f"{tokens.shape}") from None
    want = f"expected ({len(tokens)}, C, H, W) floats in [0, 1], C = 1, 3 or 4"
    if not isinstance(img, torch.Tensor):
        raise ContractError(f"{who} returned {type(img).__name__}; {want}")
    if img.ndim != 4 or len(img) != len(tokens) or img.shape[1] not in (1, 3, 4):
        raise ContractError(f"{who} returned shape {tuple(img.shape)} for tokens of shape {tokens.shape}; {want}")
    if not img.is_floating_point():
        raise ContractError(f"{who} returned {str(img.dtype).removeprefix('torch.')} pictures; {want}")
    out = (img.float().clamp(0, 1) * 255).round().to(torch.uint8).movedim(1, -1).cpu().numpy()
    return np.repeat(out, 3, -1) if out.shape[-1] == 1 else out
