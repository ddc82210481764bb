"""palette-gsvae: a VAE whose latent is a grid of categorical variables (Gumbel-softmax).

The encoder gives, at every cell of an (H/4, W/4) grid, logits over ``categories`` values; the
prior is uniform. Training feeds the decoder relaxed one-hot samples (Gumbel-softmax, Jang et
al. 2017) at a temperature annealed exponentially from ``tau_start`` to ``tau_end`` over the
``anneal`` fraction of training; it is computed from the step number, so resume is exact.
``hard`` uses the straight-through variant. Figures use true discrete codes: the mode for
reconstructions, one exact categorical sample per image for the ELBO, whose KL against the
uniform prior is analytic. Sampling draws every cell uniformly (there is no temperature to set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from artforge.models import DataInfo
from artforge_palette.ae import conv_latent_side
from artforge_palette.base import PaletteModel
from artforge_palette.nets import ConvDecoder, ConvEncoder, conv_presets


@dataclass
class GSVAEConfig:
    channels: tuple[int, ...] = (16, 64, 64)  # width at each level; each level after the first halves H and W
    blocks: int = 1  # residual blocks per level
    categories: int = 16  # values per latent cell: 4 bits each at most
    tau_start: float = 1.0  # Gumbel-softmax temperature at the start
    tau_end: float = 0.5  # ... and after `anneal` of training (exponential in between)
    anneal: float = 1.0  # fraction of training over which tau goes from tau_start to tau_end
    hard: bool = False  # straight-through Gumbel-softmax
    beta: float = 1.0  # KL weight (1 = the ELBO)
    kl_warmup: float = 0.1  # fraction of training over which the KL weight ramps up from 0
    flip: bool = False  # random horizontal flips while training
    turn: bool = False  # random quarter turns while training (square images)
    shift: int = 0  # random circular shifts of up to this many pixels each way while training


class PaletteGSVAE(PaletteModel):
    name = "palette-gsvae"
    description = "Gumbel-softmax VAE: a grid of categorical latents, temperature annealed"
    Config = GSVAEConfig
    presets = conv_presets(categories=4)
    latent = "categorical"
    variational = True

    def __init__(self, config: GSVAEConfig, info: DataInfo):
        super().__init__(config, info)
        self.h, self.w = conv_latent_side(self.name, (self.H, self.W), len(config.channels))
        k = config.categories
        self.encoder = ConvEncoder(self.V, config.channels, config.blocks, k)
        self.decoder = ConvDecoder(self.V, config.channels, config.blocks, k)
        self.latent_shape = (self.h * self.w, k)
        self.tau = config.tau_start

    def on_step(self, step: int, total_steps: int) -> None:
        c = self.config
        span = max(1.0, c.anneal * total_steps)
        self.tau = c.tau_start * (c.tau_end / c.tau_start) ** min(1.0, step / span)
        warm = c.kl_warmup * total_steps
        self.beta_now = c.beta * min(1.0, step / warm) if warm >= 1 else c.beta

    def posterior(self, tokens, y):
        logits = self.encoder(tokens)  # (B, K, h, w)
        return {"logits": logits.flatten(2).transpose(1, 2)}  # (B, h*w, K)

    def code(self, post):
        logits = post["logits"]
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)

    def draw(self, post, train: bool, generator: torch.Generator | None = None):
        logits = post["logits"].float()
        if train:
            return F.gumbel_softmax(logits, tau=self.tau, hard=self.config.hard, dim=-1)
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
        return F.one_hot((logits + gumbel).argmax(-1), logits.shape[-1]).float()

    def kl(self, post):
        logq = F.log_softmax(post["logits"].float(), -1)
        return (logq.exp() * (logq + math.log(logq.shape[-1]))).sum((1, 2))

    def prior(self, n, generator, temperature):
        device = next(self.parameters()).device
        k = self.latent_shape[-1]
        idx = torch.randint(0, k, (n, self.latent_shape[0]), generator=generator, device=device)
        return F.one_hot(idx, k).float()

    def decode(self, z, y=None):
        grid = z.transpose(1, 2).unflatten(2, (self.h, self.w))  # (B, K, h, w)
        return self.decoder(grid)
