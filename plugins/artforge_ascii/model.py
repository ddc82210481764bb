"""ascii-vae: a convolutional VAE over one-hot character grids, trained through the glyph renderer.

Encoder: a character embedding (a 1x1 convolution of the one-hot grid), a 3x3 convolution at cell
resolution, a ``patch`` x ``patch`` strided convolution and residual blocks, giving a Gaussian
latent grid (``latent`` channels at 1/``patch`` resolution) plus a ``global_latent`` vector pooled
over the whole piece. Both travel as one flat vector z. The decoder mirrors the encoder; it gets
the latent position (row, column) as two extra inputs. The global vector is there for sampling:
ASCII art is mostly margin, so the grid latents of the margin match the prior, and without a
latent for the layout, grids sampled from N(0, I) decode to nearly blank pages.

Loss, per cell:
- cross-entropy over characters (log-softmax inside ``F.cross_entropy``), each cell weighted by
  its target character's weight ``(frequency + eps) ** -freq_power`` (normalised to mean 1 over
  the data), the space's weight times ``space_weight``. Frequencies are counted on the first
  ``freq_batches`` training batches into a buffer, so checkpoints carry them and resume is exact;
- ``beta`` x KL(q(z|x) || N(0, I)), warmed up linearly over the first ``kl_warmup`` of the steps,
  with an optional free-bits floor per latent element;
- ``image_weight`` x squared error between the glyph render of the target and of a
  straight-through Gumbel-softmax sample of the prediction, whose temperature falls from
  ``tau_start`` to ``tau_end`` (exponentially in the step, set in ``on_step``). Without a loss
  that sees glyph shapes the seed project collapsed to all-space output.

Decoding takes the argmax of ``logits - calibrate * log(weight)`` (see ``logit_bias``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from artforge.errors import ArtforgeError
from artforge.models import ArtModel, DataInfo, OnnxModule
from artforge.sampling import check_code_temperature


@dataclass
class AsciiVAEConfig:
    embed: int = 16  # per-character embedding (encoder)
    cell: int = 32  # per-cell features of the decoder, before the character logits
    patch: int = 4  # cells per latent position, per side
    width: int = 64  # channels at latent resolution
    blocks: int = 2  # residual blocks in the encoder and in the decoder
    latent: int = 8  # channels of the latent grid
    global_latent: int = 32  # size of the latent vector for the whole piece (layout, style)
    prior_width: int = 32  # channels of the network giving the latent grid's prior from the global vector
    beta: float = 1.0  # KL weight after warm-up
    kl_warmup: float = 0.3  # fraction of the steps over which beta rises from 0
    free_bits: float = 0.0  # nats per latent element that cost nothing
    freq_power: float = 0.5  # character weight = frequency ** -freq_power
    space_weight: float = 0.5  # extra factor on the space's weight (de-emphasis)
    max_weight: float = 30.0  # cap on any character's weight (rare characters)
    freq_batches: int = 20  # training batches counted for the character frequencies
    calibrate: float = 0.0  # decode with logits - calibrate * log(weight); 1 undoes the weighting's bias
    image_weight: float = 1.0  # weight of the loss on the glyph render (0: characters only)
    image_px: int = 6  # font size of the renderer used by the image loss
    tau_start: float = 1.0  # Gumbel-softmax temperature of the image loss at the start
    tau_end: float = 0.3  # ... and at the end of training (exponential in between)


def _groups(c: int) -> int:
    return math.gcd(c, 8)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
            nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class Encoder(nn.Module):
    """Tokens -> (mu, logvar) of the flat latent: the global vector, then the latent grid."""

    def __init__(self, vocab: int, c: AsciiVAEConfig):
        super().__init__()
        self.embed = nn.Embedding(vocab, c.embed)
        self.cell = nn.Conv2d(c.embed, c.embed, 3, padding=1)
        self.down = nn.Conv2d(c.embed, c.width, c.patch, stride=c.patch)
        self.blocks = nn.Sequential(*(ResBlock(c.width) for _ in range(c.blocks)))
        self.norm = nn.GroupNorm(_groups(c.width), c.width)
        self.local = nn.Conv2d(c.width, 2 * c.latent, 1)
        self.globl = nn.Linear(c.width, 2 * c.global_latent) if c.global_latent else None

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed(tokens).permute(0, 3, 1, 2)
        x = self.blocks(self.down(x + F.silu(self.cell(x))))  # each cell sees its neighbours first
        x = F.silu(self.norm(x))
        stats = self.local(x)
        mu, logvar = stats.chunk(2, dim=1)
        mu, logvar = mu.flatten(1), logvar.flatten(1)
        if self.globl is not None:
            gmu, glogvar = self.globl(x.mean((2, 3))).chunk(2, dim=1)
            mu, logvar = torch.cat([gmu, mu], 1), torch.cat([glogvar, logvar], 1)
        return mu, logvar.clamp(-12.0, 8.0)


class Decoder(nn.Module):
    """Flat latent (B, global + latent*h*w) -> (B, vocab, rows, cols) logits."""

    def __init__(self, vocab: int, c: AsciiVAEConfig, latent_hw: tuple[int, int]):
        super().__init__()
        h, w = latent_hw
        self.hw, self.latent, self.global_latent = (h, w), c.latent, c.global_latent
        rows = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(1, 1, h, w)
        cols = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(1, 1, h, w)
        self.register_buffer("coords", torch.cat([rows, cols], 1).contiguous(), persistent=False)
        self.inp = nn.Conv2d(c.latent + 2, c.width, 3, padding=1)
        self.globl = nn.Linear(c.global_latent, c.width) if c.global_latent else None
        self.blocks = nn.Sequential(*(ResBlock(c.width) for _ in range(c.blocks)))
        self.norm = nn.GroupNorm(_groups(c.width), c.width)
        self.up = nn.ConvTranspose2d(c.width, c.cell, c.patch, stride=c.patch)
        self.cell = nn.Conv2d(c.cell, c.cell, 3, padding=1)
        self.out = nn.Conv2d(c.cell, vocab, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, w = self.hw
        zg, zl = z[:, : self.global_latent], z[:, self.global_latent :]
        coords = self.coords.expand(z.shape[0], -1, -1, -1)
        x = self.inp(torch.cat([zl.reshape(-1, self.latent, h, w), coords], 1))
        if self.globl is not None:
            x = x + self.globl(zg)[:, :, None, None]
        x = self.up(F.silu(self.norm(self.blocks(x))))
        x = x + F.silu(self.cell(F.silu(x)))
        return self.out(F.silu(x))


class GridPrior(nn.Module):
    """p(z_grid | z_global): a Gaussian per latent element, from the global vector and the position.

    The global vector can then say where the piece's ink is (and what it is like), and the grid
    latents of the margin cost nothing only where the prior expects margin: samples get a layout.
    """

    def __init__(self, c: AsciiVAEConfig, latent_hw: tuple[int, int]):
        super().__init__()
        h, w = latent_hw
        rows = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(1, 1, h, w)
        cols = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(1, 1, h, w)
        self.register_buffer("coords", torch.cat([rows, cols], 1).contiguous(), persistent=False)
        self.inp = nn.Linear(c.global_latent, c.prior_width)
        self.net = nn.Sequential(
            nn.Conv2d(c.prior_width + 2, c.prior_width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c.prior_width, c.prior_width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c.prior_width, 2 * c.latent, 1),
        )
        nn.init.zeros_(self.net[-1].weight)  # starts as N(0, I)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, zg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = zg.shape[0]
        g = self.inp(zg)[:, :, None, None].expand(-1, -1, *self.coords.shape[2:])
        mu, logvar = self.net(torch.cat([g, self.coords.expand(b, -1, -1, -1)], 1)).chunk(2, dim=1)
        return mu.flatten(1), logvar.clamp(-8.0, 4.0).flatten(1)


def from_noise(prior: GridPrior | None, global_latent: int, noise: torch.Tensor) -> torch.Tensor:
    """Standard-normal noise (B, latent_dim) -> a latent drawn from the (hierarchical) prior."""
    if prior is None:
        return noise
    pmu, plogvar = prior(noise[:, :global_latent])
    return torch.cat([noise[:, :global_latent], pmu + (0.5 * plogvar).exp() * noise[:, global_latent:]], 1)


class Generator(nn.Module):
    """Standard-normal noise -> character logits: the prior, the decoder and the logit bias in one
    module (what ``artforge export --onnx`` writes as ``decoder.onnx``)."""

    def __init__(self, prior: GridPrior | None, decoder: Decoder, global_latent: int, bias: torch.Tensor):
        super().__init__()
        self.prior, self.decoder, self.global_latent = prior, decoder, global_latent
        self.register_buffer("bias", bias.detach().float().view(1, -1, 1, 1).clone())

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(from_noise(self.prior, self.global_latent, noise)) + self.bias


class AsciiVAE(ArtModel):
    name = "ascii-vae"
    description = "Convolutional VAE over one-hot character grids, trained through the glyph renderer"
    Config = AsciiVAEConfig
    codecs = ("ascii",)
    presets = {
        "tiny": {"embed": 8, "cell": 8, "width": 16, "blocks": 1, "latent": 4, "global_latent": 4,
                 "freq_batches": 2},
        "cpu": {},
        "gpu": {"embed": 32, "cell": 64, "width": 192, "blocks": 4, "latent": 16, "global_latent": 64},
    }
    train_defaults = {"lr": 2e-3, "batch_size": 32, "grad_clip": 1.0, "weight_decay": 0.0}
    onnx_sampler = "artforge.onnx_runtime:latent_decoder"
    # counted character frequencies, not weights: a weight average (``train.ema``) would blend the
    # partial counts of the first batches into the loss weights and the decoding bias eval uses
    ema_copy = ("char_counts", "freq_batches_seen")

    @classmethod
    def check_training_config(cls, config: AsciiVAEConfig) -> None:
        """Weights and counts that trained without a word: a negative loss weight rewards errors, a
        negative calibrate pushes decoding further towards rare characters, a negative freq_power
        weighs common characters (mostly space) above rare ones, the opposite of its purpose, and
        with no batch counted every character weighs 1 (freq_power, space_weight and max_weight go
        unused)."""
        for key in ("beta", "kl_warmup", "free_bits", "space_weight", "image_weight", "calibrate", "freq_power"):
            if not getattr(config, key) >= 0:
                raise ArtforgeError(f"ascii-vae: {key} must be 0 or more, got {getattr(config, key)}")
        if not config.max_weight > 0:  # the cap on every character's loss weight
            raise ArtforgeError(f"ascii-vae: max_weight must be above 0, got {config.max_weight}")
        if config.freq_batches < 1:
            raise ArtforgeError(f"ascii-vae: freq_batches must be at least 1, got {config.freq_batches} "
                                "(freq_power=0 with space_weight=1 weighs every character alike)")

    def __init__(self, config: AsciiVAEConfig, info: DataInfo):
        super().__init__(config, info)
        if len(info.token_shape) != 2:
            raise ArtforgeError(f"ascii-vae needs (rows, cols) character grids, got shape {info.token_shape}")
        rows, cols = info.token_shape
        # sizes torch builds as zero-width layers without a word; the first step then failed
        least = {"embed": 1, "cell": 1, "width": 1, "latent": 1, "blocks": 0, "global_latent": 0,
                 "prior_width": 1 if config.global_latent else 0}
        for key, low in least.items():
            if getattr(config, key) < low:
                raise ArtforgeError(f"ascii-vae: {key} must be at least {low}, got {getattr(config, key)}")
        for key in ("tau_start", "tau_end"):  # Gumbel-softmax temperatures divide the logits
            if not getattr(config, key) > 0:
                raise ArtforgeError(f"ascii-vae: {key} must be above 0, got {getattr(config, key)}")
        if not 4 <= config.image_px <= 128:  # the renderer's font size; build_atlas's own error names no field
            raise ArtforgeError(f"ascii-vae: image_px must be 4 to 128 pixels, got {config.image_px}")
        p = config.patch
        if p < 1 or rows % p or cols % p:
            raise ArtforgeError(f"ascii-vae: the grid {cols}x{rows} must divide by patch={p} "
                                "(use e.g. ascii:64x64 or --set patch=...)")
        from artforge.codecs import codec_from_config
        from artforge_ascii.atlas import build_atlas
        from artforge_ascii.renderer import GlyphRenderer

        codec = codec_from_config(info.codec)
        self.vocab = info.vocab_size
        self.space = codec.space
        self.latent_dim = config.global_latent + config.latent * (rows // p) * (cols // p)
        self.encoder = Encoder(self.vocab, config)
        self.decoder = Decoder(self.vocab, config, (rows // p, cols // p))
        self.prior = GridPrior(config, (rows // p, cols // p)) if config.global_latent else None
        self.renderer = GlyphRenderer(build_atlas(codec.chars, codec.font, config.image_px))
        ink = 1.0 - self.renderer.glyphs
        self.image_scale = float((ink**2).sum((1, 2)).mean())  # mean squared ink of one glyph cell
        self.register_buffer("char_counts", torch.zeros(self.vocab, dtype=torch.float64))
        self.register_buffer("freq_batches_seen", torch.zeros((), dtype=torch.long))
        self.tau = config.tau_start
        self.beta = config.beta

    # -- schedules and weights ----------------------------------------------------------------
    def on_step(self, step: int, total_steps: int) -> None:
        c = self.config
        frac = step / max(1, total_steps)
        self.tau = c.tau_start * (c.tau_end / c.tau_start) ** min(1.0, frac)
        self.beta = c.beta * min(1.0, frac / c.kl_warmup) if c.kl_warmup > 0 else c.beta

    def char_weights(self) -> torch.Tensor:
        """(vocab,) loss weight of each character: inverse frequency ** power, mean 1 over the data."""
        c = self.config
        counts = self.char_counts.float()
        if counts.sum() <= 0:
            return torch.ones(self.vocab, device=counts.device)
        freq = counts / counts.sum()
        w = (freq + 1e-6) ** -c.freq_power
        w = w / (freq * w).sum()
        w[self.space] = w[self.space] * c.space_weight
        return w.clamp(max=c.max_weight)

    def logit_bias(self) -> torch.Tensor:
        """(vocab,) added to the logits when decoding: ``-calibrate * log(weight)``.

        The weighted cross-entropy is minimised by q(c) proportional to weight(c) p(c), so its raw
        argmax favours rare characters: more of the art's ink is right, and more margin is wrongly
        inked. ``calibrate=1`` undoes the weighting (the argmax of p itself); 0 keeps it.
        """
        return -self.config.calibrate * torch.log(self.char_weights())

    def _count(self, tokens: torch.Tensor) -> None:
        if self.training and int(self.freq_batches_seen) < self.config.freq_batches:
            self.char_counts += torch.bincount(tokens.reshape(-1), minlength=self.vocab).to(self.char_counts.dtype)
            self.freq_batches_seen += 1

    # -- the model ----------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, rows, cols) tokens -> (mu, logvar), each (B, latent_dim)."""
        return self.encoder(tokens.long())

    def decode(self, z: torch.Tensor, calibrated: bool = True) -> torch.Tensor:
        """(B, latent_dim) latents -> (B, vocab, rows, cols) logits (bias-corrected when ``calibrated``)."""
        logits = self.decoder(z)
        return logits + self.logit_bias().to(logits.dtype).view(1, -1, 1, 1) if calibrated else logits

    @staticmethod
    def _kl_normal(mu: torch.Tensor, logvar: torch.Tensor, pmu: torch.Tensor | None = None,
                   plogvar: torch.Tensor | None = None) -> torch.Tensor:
        """KL(N(mu, var) || N(pmu, pvar)) of each latent element (default prior N(0, 1)), in nats."""
        if pmu is None:
            return 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar)
        return 0.5 * (plogvar - logvar + (logvar.exp() + (mu - pmu) ** 2) * torch.exp(-plogvar) - 1.0)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) KL per element: the global vector against N(0, I), the grid against its
        prior given the global part of ``z``."""
        mu, logvar = mu.float(), logvar.float()
        if self.prior is None:
            return self._kl_normal(mu, logvar)
        g = self.config.global_latent
        pmu, plogvar = self.prior(z[:, :g].float())
        return torch.cat([self._kl_normal(mu[:, :g], logvar[:, :g]),
                          self._kl_normal(mu[:, g:], logvar[:, g:], pmu, plogvar)], 1)

    def from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """Standard-normal noise (B, latent_dim) -> a latent drawn from the (hierarchical) prior."""
        return from_noise(self.prior, self.config.global_latent, noise)

    def forward(self, batch: dict[str, torch.Tensor], phase: str = "main") -> dict[str, torch.Tensor]:
        tokens = batch["tokens"].long()
        self._count(tokens)
        c = self.config
        mu, logvar = self.encode(tokens)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        logits = self.decode(z, calibrated=False).float()
        weights = self.char_weights().to(logits.dtype)
        cells = tokens[0].numel()
        ce = (weights[tokens] * F.cross_entropy(logits, tokens, reduction="none")).mean()  # log-softmax inside
        kl_el = self.kl(mu, logvar, z)
        kl_per_piece = kl_el.sum(1).mean()
        kl_term = (kl_el.mean(0).clamp(min=c.free_bits).sum() if c.free_bits > 0 else kl_per_piece) / cells
        loss = ce + (self.beta if self.training else c.beta) * kl_term
        out = {"ce": ce.detach(), "kl": kl_per_piece.detach()}
        if self.training and c.image_weight > 0:
            img = self.image_loss(logits, tokens)
            loss = loss + c.image_weight * img
            out["image"] = img.detach()
        if not self.training:  # accuracies for validation (an argmax over every cell is not free)
            pred = (logits + self.logit_bias().view(1, -1, 1, 1)).argmax(1)
            ink = tokens != self.space
            out["acc"] = (pred == tokens).float().mean()
            out["acc_nonspace"] = (pred == tokens)[ink].float().mean() if ink.any() else out["acc"]
            raw = logits.argmax(1)  # without the calibration bias: more ink, right or wrong
            out["acc_raw"] = (raw == tokens).float().mean()
            out["acc_nonspace_raw"] = (raw == tokens)[ink].float().mean() if ink.any() else out["acc_raw"]
        out["loss"] = loss
        return out

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """The default's means weighted by pieces, except the non-space accuracies, weighted by ink
        cells: a mean of per-batch means would count a batch with little ink as much as one with much,
        and differ from eval's ``nonspace_accuracy`` on the same pieces."""
        totals: dict[str, float] = {}
        pieces = ink_cells = 0
        for batch in batches:
            out = self(batch)
            n = batch["tokens"].shape[0]
            ink = int((batch["tokens"] != self.space).sum())
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + float(v) * (ink if k.startswith("acc_nonspace") else n)
            pieces += n
            ink_cells += ink
        figures = {k: v / max(ink_cells if k.startswith("acc_nonspace") else pieces, 1) for k, v in totals.items()}
        if ink_cells == 0:  # no ink at all: as forward() does for one batch, the plain accuracies stand in
            for k in ("acc_nonspace", "acc_nonspace_raw"):
                if k in figures:
                    figures[k] = figures[k.replace("_nonspace", "")]
        return figures

    def image_loss(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Squared render error of a straight-through Gumbel-softmax sample, in glyph units per cell.

        Only the batch's ink bounding box (plus a margin of ``patch`` cells) is rendered: outside
        it every target cell is a space, which the cross-entropy already teaches, and ASCII art
        is mostly margin (98% of the cells of the ascii-art corpus are spaces).
        """
        ink = tokens != self.space
        if ink.any():
            m = self.config.patch
            rows, cols = ink.any(2).any(0).nonzero(), ink.any(1).any(0).nonzero()
            r0, r1 = max(0, int(rows[0]) - m), int(rows[-1]) + 1 + m
            c0, c1 = max(0, int(cols[0]) - m), int(cols[-1]) + 1 + m
            logits, tokens = logits[:, :, r0:r1, c0:c1], tokens[:, r0:r1, c0:c1]
        u = torch.rand_like(logits).clamp_(1e-9, 1.0 - 1e-9)
        soft = F.softmax((logits - torch.log(-torch.log(u))) / self.tau, dim=1)
        hard = F.one_hot(soft.argmax(1), self.vocab).permute(0, 3, 1, 2).to(soft.dtype)
        sample = hard + soft - soft.detach()  # forward: a real sample; backward: the soft gradient
        with torch.no_grad():
            target = self.renderer(tokens)
        diff = self.renderer(sample) - target
        return (diff * diff).sum() / (tokens.numel() * self.image_scale)

    # -- using --------------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        mu, _ = self.encode(tokens)
        return self.decode(mu).argmax(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               labels: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        """Noise from N(0, I) scaled by ``temperature``, through the prior (global vector, then the
        grid given it) and the decoder; each cell its likeliest character."""
        if labels is not None:
            raise ArtforgeError("ascii-vae is unconditional; drop --label")
        check_code_temperature(self.name, temperature)
        device = self.decoder.coords.device
        noise = torch.randn((n, self.latent_dim), generator=generator, device=device) * temperature
        return self.decode(self.from_noise(noise)).argmax(1)

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        """``steps`` grids along the straight line between the posterior means of ``a`` and ``b``."""
        za, _ = self.encode(a.reshape(1, *a.shape[-2:]))
        zb, _ = self.encode(b.reshape(1, *b.shape[-2:]))
        t = torch.linspace(0, 1, max(2, steps), device=za.device).view(-1, 1)
        return self.decode(za * (1 - t) + zb * t).argmax(1)

    @torch.no_grad()
    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]], codec: Any) -> dict[str, float]:
        """Reconstruction from the posterior mean: character accuracy (all cells, non-space cells,
        and how often a space is drawn as ink), SSIM of the glyph renders (whole grid, and the
        piece's bounding box only), KL per piece."""
        from artforge_ascii.renderer import GlyphRenderer
        from artforge_ascii.ssim import grid_ssim

        render = GlyphRenderer(codec.atlas).to(self.decoder.coords.device)
        n = cells = right = ink = ink_right = blank = false_ink = 0
        ssim_sum = ssim_piece_sum = kl_sum = ce_sum = 0.0
        weights = self.char_weights()
        for batch in batches:
            tokens = batch["tokens"].long()
            mu, logvar = self.encode(tokens)
            raw = self.decode(mu, calibrated=False).float()
            pred = (raw + self.logit_bias().view(1, -1, 1, 1)).argmax(1)
            ok = pred == tokens
            is_ink = tokens != self.space
            n += tokens.shape[0]
            cells += tokens.numel()
            right += int(ok.sum())
            ink += int(is_ink.sum())
            ink_right += int((ok & is_ink).sum())
            blank += int((~is_ink).sum())
            false_ink += int(((pred != self.space) & ~is_ink).sum())
            kl_sum += float(self.kl(mu, logvar, mu).sum())
            ce_sum += float((weights[tokens] * F.cross_entropy(raw, tokens, reduction="none")).sum())
            for t, p in zip(tokens, pred, strict=True):
                whole, piece = grid_ssim(render, t, p, self.space)
                ssim_sum += whole
                ssim_piece_sum += piece
        return {
            "char_accuracy": right / max(cells, 1),
            "nonspace_accuracy": ink_right / max(ink, 1),
            "false_ink_rate": false_ink / max(blank, 1),
            "ssim": ssim_sum / max(n, 1),
            "ssim_piece": ssim_piece_sum / max(n, 1),
            "kl_per_piece": kl_sum / max(n, 1),
            "weighted_ce": ce_sum / max(cells, 1),
            "pieces": float(n),
        }

    # -- export -------------------------------------------------------------------------------
    def onnx_modules(self) -> list[OnnxModule]:
        g = torch.Generator().manual_seed(0)
        z = torch.randn((5, self.latent_dim), generator=g)
        check = torch.randn((3, self.latent_dim), generator=g)
        module = Generator(self.prior, self.decoder, self.config.global_latent, self.logit_bias()).eval()
        return [OnnxModule("decoder", module, (z,), ["z"], ["logits"],
                           {"z": {0: "batch"}, "logits": {0: "batch"}}, check_inputs=(check,))]

    def onnx_manifest(self) -> dict:
        return {"latent_shape": [self.latent_dim], "latent": "gaussian", "temperature": "latent"}  # as sample()
