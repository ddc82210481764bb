"""palette-ae and palette-conv-ae: plain autoencoders over palette-index grids.

They learn to reconstruct; they have no prior of their own. So that ``sample`` still means
something, each keeps a running mean and variance of the codes it produced in training (EMA,
momentum 0.01, in buffers saved with the checkpoint) and samples from that diagonal Gaussian
(an ex-post density, as in "From Variational to Deterministic Autoencoders", Ghosh et al. 2019).
Expect rougher samples than a VAE's; use the VAEs to generate. The exported ONNX decoder takes a
standard-normal ``z`` and applies this mean and spread itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from artforge.errors import ArtforgeError
from artforge.models import DataInfo
from artforge_palette.base import PaletteModel
from artforge_palette.nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, conv_presets


def conv_latent_side(name: str, shape: tuple[int, int], levels: int) -> tuple[int, int]:
    f = 2 ** (levels - 1)
    if shape[0] % f or shape[1] % f:
        raise ArtforgeError(f"{name} with {levels} channel levels halves the image {levels - 1} times, so its sides "
                            f"must be multiples of {f}; got {shape[1]}x{shape[0]} (use --size, or fewer channels)")
    return shape[0] // f, shape[1] // f


class FittedPrior(PaletteModel):
    """A deterministic code plus a running diagonal Gaussian of the training codes."""

    latent = "fitted"
    variational = False
    refinable = True
    momentum = 0.01

    def _init_prior(self) -> None:
        self.register_buffer("z_mean", torch.zeros(self.latent_shape))
        self.register_buffer("z_sq", torch.ones(self.latent_shape))
        self.register_buffer("z_seen", torch.zeros(()))

    def code(self, post):
        return post["z"]

    def draw(self, post, train: bool, generator: torch.Generator | None = None):
        z = post["z"]
        if train:
            with torch.no_grad():
                m, sq = z.float().mean(0), (z.float() ** 2).mean(0)
                first = bool(self.z_seen == 0)
                self.z_mean.copy_(m if first else torch.lerp(self.z_mean, m, self.momentum))
                self.z_sq.copy_(sq if first else torch.lerp(self.z_sq, sq, self.momentum))
                self.z_seen += 1
        return z

    def z_std(self) -> torch.Tensor:
        return (self.z_sq - self.z_mean**2).clamp_min(0).sqrt()

    def refine_code(self, tokens: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor, steps: int,
                    lr: float = 0.3) -> torch.Tensor:
        """Semi-amortised inference: starting from the encoder's code ``z``, ``steps`` Adam steps on
        each image's code alone to lower its reconstruction cross-entropy; the decoder is fixed.

        The code keeps its size (8x8x8 numbers stay 8x8x8 numbers); only the encoder's guess is
        polished, which closes the part of the held-out error that is the encoder's, not the
        decoder's. Steps are in units of the training codes' spread (``lr`` 0.3 = 30% of it), decay
        on a cosine to zero, and each image keeps the best code it reached. Costs ``steps`` decoder
        passes and backward passes."""
        scale = self.z_std().clamp_min(1e-3)
        delta = torch.zeros_like(z, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / max(1, steps))))
        best_z, best = z.detach().clone(), self._recon(self.decode(z, y), tokens)
        frozen = [p for p in self.parameters() if p.requires_grad]
        for p in frozen:  # gradients for the code only: no weight gradients are computed
            p.requires_grad_(False)
        try:
            with torch.enable_grad():
                for i in range(steps + 1):
                    code = z.detach() + scale * delta
                    loss = self._recon(self.decode(code, y), tokens)
                    better = loss.detach() < best
                    best = torch.where(better, loss.detach(), best)
                    best_z[better] = code.detach()[better]
                    if i == steps:
                        break
                    opt.zero_grad(set_to_none=True)
                    loss.sum().backward()
                    opt.step()
                    sched.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return best_z

    def prior(self, n, generator, temperature):
        eps = torch.randn(n, *self.latent_shape, generator=generator, device=self.z_mean.device)
        return self.z_mean + temperature * self.z_std() * eps

    def onnx_decoder(self) -> nn.Module:
        return _StandardisedDecoder(self)


class _StandardisedDecoder(nn.Module):
    def __init__(self, m: FittedPrior):
        super().__init__()
        self.m = m

    def forward(self, z):
        return self.m.decode(self.m.z_mean + self.m.z_std() * z)


@dataclass
class AEConfig:
    latent: int = 64  # code size
    embed: int = 8  # per-pixel colour embedding (first layer = a low-rank linear map of the one-hot)
    hidden: tuple[int, ...] = (512,)  # hidden layer widths of the encoder (the decoder mirrors them)
    pixel: int = 16  # features per pixel before the palette head
    flip: bool = False  # random horizontal flips while training
    turn: bool = False  # random quarter turns while training (square images)
    shift: int = 0  # random circular shifts of up to this many pixels each way while training


class PaletteAE(FittedPrior):
    name = "palette-ae"
    description = "MLP autoencoder over palette indices (softmax per pixel); samples from a fitted Gaussian"
    Config = AEConfig
    presets = {"tiny": {"latent": 8, "embed": 4, "hidden": (32,), "pixel": 4}}

    def __init__(self, config: AEConfig, info: DataInfo):
        super().__init__(config, info)
        shape = (self.H, self.W)
        self.encoder = MLPEncoder(self.V, shape, config.embed, config.hidden, config.latent)
        self.decoder = MLPDecoder(self.V, shape, config.latent, config.hidden, config.pixel)
        self.latent_shape = (config.latent,)
        self._init_prior()

    def posterior(self, tokens, y):
        return {"z": self.encoder(tokens)}

    def decode(self, z, y=None):
        return self.decoder(z)


@dataclass
class ConvAEConfig:
    channels: tuple[int, ...] = (16, 64, 64)  # width at each level; each level after the first halves H and W
    blocks: int = 1  # residual blocks per level
    latent_channels: int = 8  # channels of the code (32x32 tiles with 3 levels -> an 8x8x8 code)
    flip: bool = False  # random horizontal flips while training
    turn: bool = False  # random quarter turns while training (square images)
    shift: int = 0  # random circular shifts of up to this many pixels each way while training


class PaletteConvAE(FittedPrior):
    name = "palette-conv-ae"
    description = "Convolutional autoencoder over palette indices, code (C, H/4, W/4) by default"
    Config = ConvAEConfig
    presets = conv_presets(latent_channels=2)

    def __init__(self, config: ConvAEConfig, info: DataInfo):
        super().__init__(config, info)
        h, w = conv_latent_side(self.name, (self.H, self.W), len(config.channels))
        self.encoder = ConvEncoder(self.V, config.channels, config.blocks, config.latent_channels)
        self.decoder = ConvDecoder(self.V, config.channels, config.blocks, config.latent_channels)
        self.latent_shape = (config.latent_channels, h, w)
        self._init_prior()

    def posterior(self, tokens, y):
        return {"z": self.encoder(tokens)}

    def decode(self, z, y=None):
        return self.decoder(z)
