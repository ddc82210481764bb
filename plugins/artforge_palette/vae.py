"""palette-vae, palette-conv-vae and palette-cvae: Gaussian-latent VAEs over palette indices.

q(z | x) is a diagonal Gaussian, the prior N(0, I), the likelihood a softmax over the palette at
every pixel. The loss is the negative ELBO per pixel, with the KL term's weight ramped from 0 to
``beta`` over the first ``kl_warmup`` fraction of training (derived from the step number, so a
resumed run follows the same schedule). Validation always uses the true ELBO (weight 1).

palette-cvae conditions encoder and decoder on the cache's label vector (CryptoPunks-style
``type=female``, ``earring``): each residual block adds a projection of it. Without ``--label``
it samples label vectors as often as they occurred in training (counted in a buffer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from artforge.models import DataInfo
from artforge_palette.ae import conv_latent_side
from artforge_palette.base import PaletteModel, gaussian_kl
from artforge_palette.nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, conv_presets


class GaussianLatent(PaletteModel):
    latent = "gaussian"
    variational = True

    def code(self, post):
        return post["mu"]

    def draw(self, post, train: bool, generator: torch.Generator | None = None):
        mu = post["mu"]
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + (0.5 * post["logvar"]).exp() * eps

    def kl(self, post):
        return gaussian_kl(post["mu"], post["logvar"])

    def prior(self, n, generator, temperature):
        device = next(self.parameters()).device
        return temperature * torch.randn(n, *self.latent_shape, generator=generator, device=device)

    def on_step(self, step: int, total_steps: int) -> None:
        beta, warm = self.config.beta, self.config.kl_warmup * total_steps
        self.beta_now = beta * min(1.0, step / warm) if warm >= 1 else beta

    @staticmethod
    def split(h: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = h.chunk(2, dim=1)
        return {"mu": mu, "logvar": logvar.clamp(-30.0, 20.0)}


@dataclass
class VAEConfig:
    latent: int = 64  # code size
    embed: int = 8  # per-pixel colour embedding (first layer = a low-rank linear map of the one-hot)
    hidden: tuple[int, ...] = (512,)  # hidden layer widths of the encoder (the decoder mirrors them)
    pixel: int = 16  # features per pixel before the palette head
    beta: float = 1.0  # KL weight (1 = the ELBO)
    kl_warmup: float = 0.1  # fraction of training over which the KL weight ramps up from 0
    flip: bool = False  # random horizontal flips while training
    turn: bool = False  # random quarter turns while training (square images)
    shift: int = 0  # random circular shifts of up to this many pixels each way while training


class PaletteVAE(GaussianLatent):
    name = "palette-vae"
    description = "MLP VAE over palette indices (Gaussian latent, softmax per pixel)"
    Config = VAEConfig
    presets = {"tiny": {"latent": 8, "embed": 4, "hidden": (32,), "pixel": 4}}

    def __init__(self, config: VAEConfig, info: DataInfo):
        super().__init__(config, info)
        shape = (self.H, self.W)
        self.encoder = MLPEncoder(self.V, shape, config.embed, config.hidden, 2 * config.latent)
        self.decoder = MLPDecoder(self.V, shape, config.latent, config.hidden, config.pixel)
        self.latent_shape = (config.latent,)

    def posterior(self, tokens, y):
        return self.split(self.encoder(tokens))

    def decode(self, z, y=None):
        return self.decoder(z)


@dataclass
class ConvVAEConfig:
    channels: tuple[int, ...] = (16, 64, 64)  # width at each level; each level after the first halves H and W
    blocks: int = 1  # residual blocks per level
    latent_channels: int = 8  # channels of the latent grid (32x32 tiles with 3 levels -> 8x8x8)
    beta: float = 1.0  # KL weight (1 = the ELBO)
    kl_warmup: float = 0.1  # fraction of training over which the KL weight ramps up from 0
    flip: bool = False  # random horizontal flips while training
    turn: bool = False  # random quarter turns while training (square images)
    shift: int = 0  # random circular shifts of up to this many pixels each way while training


class PaletteConvVAE(GaussianLatent):
    name = "palette-conv-vae"
    description = "Convolutional VAE over palette indices, latent (C, H/4, W/4) by default"
    Config = ConvVAEConfig
    presets = conv_presets(latent_channels=2)

    def __init__(self, config: ConvVAEConfig, info: DataInfo):
        super().__init__(config, info)
        h, w = conv_latent_side(self.name, (self.H, self.W), len(config.channels))
        cond = self.n_labels
        self.encoder = ConvEncoder(self.V, config.channels, config.blocks, 2 * config.latent_channels, cond)
        self.decoder = ConvDecoder(self.V, config.channels, config.blocks, config.latent_channels, cond)
        self.latent_shape = (config.latent_channels, h, w)

    def posterior(self, tokens, y):
        return self.split(self.encoder(tokens, y))

    def decode(self, z, y=None):
        return self.decoder(z, y)


class PaletteCVAE(PaletteConvVAE):
    name = "palette-cvae"
    description = "Label-conditional convolutional VAE (CryptoPunks-style labels: --label type=female)"
    needs_labels = True
