"""sigil-dae: a denoising autoencoder that cleans binary glyph bitmaps.

Trained on glyphs corrupted on the fly (``figures.corrupt``: each pixel flipped with probability
``noise``, ``holes`` squares blanked) to predict the clean glyph, with a per-pixel binary
cross-entropy. The net is a small U-Net: strided convolutions down, transposed ones up, and the
full-resolution features of each level passed across, so thin strokes need not survive the
bottleneck. ``artforge reconstruct`` runs it on given images (e.g. a GAN's samples, the use the
seed project made of it); ``artforge eval`` compares its pixel error on corrupted held-out glyphs
with that of the corrupted input and of a 3x3 median filter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from artforge.augment import augment
from artforge.errors import ArtforgeError
from artforge.models import ArtModel, DataInfo, OnnxModule
from artforge_sigil.figures import corrupt, median3


@dataclass
class SigilDAEConfig:
    width: int = 16  # channels at full size, doubled at each level down
    levels: int = 3  # times the size is halved
    noise: float = 0.05  # share of pixels flipped while training
    holes: int = 2  # blanked squares (side H/8) per glyph while training
    flip: bool = True  # random horizontal flips while training


def _conv(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(8 if b % 8 == 0 else 1, b), nn.SiLU())


class UNet(nn.Module):
    def __init__(self, width: int, levels: int):
        super().__init__()
        ch = [width * 2**i for i in range(levels + 1)]
        self.inp = _conv(1, ch[0])
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 4, stride=2, padding=1), _conv(b, b))
                                  for a, b in zip(ch, ch[1:], strict=False))
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 4, stride=2, padding=1)
                                for a, b in zip(ch, ch[1:], strict=False))
        self.merge = nn.ModuleList(_conv(2 * a, a) for a in ch[:-1])
        self.out = nn.Conv2d(ch[0], 1, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, H, W) 0/1 -> (B, H, W) logits of ink."""
        x = self.inp(tokens.float()[:, None] * 2 - 1)
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], 1))
        return self.out(x)[:, 0]


class SigilDAE(ArtModel):
    name = "sigil-dae"
    description = "Denoising autoencoder for binary glyphs: removes speckle, mends broken strokes"
    usage = "it cleans glyphs rather than drawing new ones: artforge reconstruct RUN IMAGES -o pairs.png"
    Config = SigilDAEConfig
    codecs = ("binary",)
    presets = {
        "tiny": {"width": 8, "levels": 2},
        "small": {"width": 16, "levels": 3},
        "base": {"width": 32, "levels": 4},
    }
    train_defaults = {"lr": 2e-3, "batch_size": 32, "weight_decay": 0.0, "grad_clip": 1.0}
    EVAL_SEED = 7  # seeds the corruption of held-out glyphs (``held_out_corruption``)

    def __init__(self, config: SigilDAEConfig, info: DataInfo):
        super().__init__(config, info)
        if len(info.token_shape) != 2:
            raise ArtforgeError(f"sigil-dae needs 2-D bitmaps, got token shape {info.token_shape}")
        self.H, self.W = info.token_shape
        if config.levels < 1 or self.H % 2**config.levels or self.W % 2**config.levels:
            raise ArtforgeError(f"sigil-dae: {self.H}x{self.W} is not divisible by 2^levels = "
                                f"{2 ** max(config.levels, 0)} (set levels lower)")
        if not 0 <= config.noise < 0.5:
            raise ArtforgeError(f"sigil-dae: noise must be in [0, 0.5), got {config.noise}")
        if config.holes < 0 or config.width < 1:
            raise ArtforgeError("sigil-dae: holes must be >= 0 and width >= 1")
        self.net = UNet(config.width, config.levels)

    def _loss(self, noisy: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(noisy).float()
        return F.binary_cross_entropy_with_logits(logits, clean.float()), logits

    def forward(self, batch: dict[str, torch.Tensor], phase: str = "main") -> dict[str, torch.Tensor]:
        clean = batch["tokens"]
        if self.training and self.config.flip:
            clean = augment(clean, flip=True)
        noisy = corrupt(clean, self.config.noise, self.config.holes)
        loss, logits = self._loss(noisy, clean)
        return {"loss": loss, "pixel_error": ((logits.detach() > 0).long() != clean).float().mean()}

    @torch.no_grad()
    def denoise(self, tokens: torch.Tensor) -> torch.Tensor:
        return (self.net(tokens) > 0).long()

    @torch.no_grad()
    def reconstruct(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ArtforgeError("sigil-dae takes no labels; drop --label")
        return self.denoise(tokens)

    # -- figures --------------------------------------------------------------------------------
    def held_out_corruption(self, clean: torch.Tensor, first: int = 0) -> torch.Tensor:
        """The fixed corruption of held-out glyphs ``first``, ``first + 1``, ...: each glyph's draw
        is seeded by its index, so figures depend neither on the batch size nor on the run."""
        g = torch.Generator(clean.device)
        out = []
        for i in range(len(clean)):
            g.manual_seed(self.EVAL_SEED * 1_000_003 + first + i)
            out.append(corrupt(clean[i : i + 1], self.config.noise, self.config.holes, generator=g))
        return torch.cat(out) if out else clean.clone()

    def _corrupted(self, batches: Iterable[dict[str, torch.Tensor]]):
        seen = 0
        for batch in batches:
            clean = batch["tokens"].to(self.device)
            yield clean, self.held_out_corruption(clean, seen)
            seen += len(clean)

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        loss, wrong, n = 0.0, 0, 0
        for clean, noisy in self._corrupted(batches):
            b_loss, logits = self._loss(noisy, clean)
            loss += float(b_loss) * clean.numel()
            wrong += int(((logits > 0).long() != clean).sum())
            n += clean.numel()
        return {"loss": loss / max(n, 1), "pixel_error": wrong / max(n, 1)}

    @torch.no_grad()
    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]], codec: Any) -> dict[str, float]:
        """Pixel error and ink IoU against the clean held-out glyphs, for the corrupted input, a 3x3
        median filter of it, and this model's output."""
        ways = ("corrupted", "median3", "model")
        wrong = dict.fromkeys(ways, 0)
        inter, union = dict.fromkeys(ways, 0), dict.fromkeys(ways, 0)
        pixels, images = 0, 0
        for clean, noisy in self._corrupted(batches):
            for way, out in zip(ways, (noisy, median3(noisy), self.denoise(noisy)), strict=True):
                wrong[way] += int((out != clean).sum())
                inter[way] += int((out.bool() & clean.bool()).sum())
                union[way] += int((out.bool() | clean.bool()).sum())
            pixels += clean.numel()
            images += clean.shape[0]
        if not images:
            raise ArtforgeError("sigil-dae: no held-out glyphs to evaluate on")
        figures = {f"pixel_error_{w}": wrong[w] / pixels for w in ways}
        figures |= {f"ink_iou_{w}": inter[w] / max(union[w], 1) for w in ways}
        return {**figures, "noise": self.config.noise, "holes": float(self.config.holes), "images": float(images)}

    # -- export ---------------------------------------------------------------------------------
    def onnx_modules(self) -> list[OnnxModule]:
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 2, (5, self.H, self.W), generator=g)
        check = torch.randint(0, 2, (3, self.H, self.W), generator=g)
        return [OnnxModule("denoiser", self.net.eval(), (x,), ["tokens"], ["logits"],
                           {"tokens": {0: "batch"}, "logits": {0: "batch"}}, check_inputs=(check,))]
