"""sigil-dcgan: a DCGAN over binary glyph bitmaps -- new sigils from noise.

The generator maps a Gaussian code through transposed convolutions that double the size from 4x4
to the working size (the glyph size / ``scale``) and ends in a tanh: grey ink in [-1, 1]. The
discriminator halves it back with strided convolutions. A sample is the generator's picture
resized (bilinear) to the glyph size and cut at 0, so its outlines are smooth, not 2x2 blocks.

What made it train on a CPU in minutes, where the 2015 recipe drew one blob for every code
(measured on the 2,440 built-in glyphs; see docs/plugins/sigil.md):
- real glyphs reach the discriminator area-averaged to the working size, so grey at the edges:
  black-and-white reals against grey fakes are told apart without a look at the shape;
- spectral normalisation and a minibatch standard deviation feature in the discriminator (a
  generator that draws one glyph for every code is easy to spot), hinge losses, two
  discriminator updates per generator update, Adam with beta1 = 0 and a constant rate;
- the same random shifts (up to 1/8 of the size) and blanked squares (1/4) on real and generated
  glyphs before the discriminator sees them (differentiable augmentation): with 2k glyphs it
  would otherwise learn them by heart;
- group norm in the generator: batch norm's running statistics drew other glyphs in eval mode
  than in training, and made a sample depend on its batch;
- an average of the generator's weights (the engine's EMA) draws the samples.
``temperature`` scales the code (below 1 trades variety for typical glyphs).

A known weakness: while the discriminator wins early on, the generator can fall to blank glyphs,
its tanh saturated at the background; one seed of two stayed blank from step 150 to 800 before it
came back. Without the tanh such spells end within 50 steps, but the glyphs were no better with
that seed and worse with the other, so the tanh stays (figures in docs/plugins/sigil.md).

sigil-cdcgan is the same pair told each glyph's label: the generator takes the label's embedding at
its input and in every norm, the discriminator projects it onto its features and also sees how
much glyphs sharing a label differ. Alone, that drew one glyph per label whatever the code; a
mode-seeking term (two codes, one label: two glyphs) restored the code's say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from artforge.augment import augment
from artforge.conditioning import LabelBank
from artforge.errors import ArtforgeError
from artforge.models import ArtModel, DataInfo, OnnxModule
from artforge.sampling import check_code_temperature
from artforge_sigil.figures import frechet, iou_matrix, nearest, nearest_iou, paired_iou, pooled, strokes


@dataclass
class SigilGANConfig:
    latent: int = 64  # size of the noise vector a glyph is drawn from
    width: int = 16  # channels at the working size, doubling per halving up to 8x
    scale: int = 2  # the networks work at glyph size / scale (64x64 glyphs -> 32x32)
    d_steps: int = 2  # discriminator updates per generator update
    flip: bool = True  # random horizontal flips of the real glyphs
    augment: bool = True  # shifts and blanked squares on what the discriminator sees
    mbstd: bool = True  # minibatch standard deviation feature in the discriminator
    mode_seek: float = 0.0  # weight of the mode-seeking term (conditional: pairs with one label differ)


def _channels(levels: int, width: int) -> list[int]:
    """Channels from 4x4 (first) to the working size (last)."""
    return [width * min(8, 2 ** (levels - i)) for i in range(levels + 1)]


def _groups(c: int) -> int:
    return 8 if c % 8 == 0 else 1


class Generator(nn.Module):
    """Code (and label vector) -> grey glyph at the working size.

    With labels, the label vector's embedding joins the code at the input, and scales and shifts
    every group norm's output (as BigGAN's conditional batch norm does), so the class can steer
    the strokes at every size, not only the first layer's."""

    def __init__(self, latent: int, size: int, width: int, n_labels: int = 0):
        super().__init__()
        ch = _channels(size.bit_length() - 3, width)  # 4 * 2^levels = size
        self.c0 = ch[0]
        self.fc = nn.Linear(latent * (2 if n_labels else 1), ch[0] * 16)
        layers: list[nn.Module] = [nn.GroupNorm(_groups(ch[0]), ch[0]), nn.ReLU()]
        for a, b in zip(ch, ch[1:], strict=False):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1, bias=False), nn.GroupNorm(_groups(b), b),
                       nn.ReLU()]
        layers += [nn.Conv2d(ch[-1], 1, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.embed = nn.Linear(n_labels, latent, bias=False) if n_labels else None
        # per group norm (by its index in net): a gain and a shift from the label embedding, 0 at first
        self.film = nn.ModuleDict({str(i): nn.Linear(latent, 2 * m.num_channels) for i, m in enumerate(layers)
                                   if isinstance(m, nn.GroupNorm)}) if n_labels else None

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent)[, (B, labels)] -> (B, 1, size, size) grey ink in [-1, 1] (above 0 = ink)."""
        if self.embed is None:
            return self.net(self.fc(z).view(-1, self.c0, 4, 4))
        if y is None:
            raise ArtforgeError("this generator is conditional and needs labels")
        e = self.embed(y.to(z.dtype))
        h = self.fc(torch.cat([z, e], 1)).view(-1, self.c0, 4, 4)
        for i, layer in enumerate(self.net):
            h = layer(h)
            if str(i) in self.film:
                gain, shift = self.film[str(i)](e)[:, :, None, None].chunk(2, 1)
                h = h * (1 + gain) + shift
        return h


class Discriminator(nn.Module):
    """Glyph (and label vector) -> score of "real". With labels it is a projection discriminator
    (Miyato & Koyama 2018): the score adds the inner product of the label's embedding with the
    pooled features, so "a real glyph of this class" is one number."""

    def __init__(self, size: int, width: int, mbstd: bool, n_labels: int = 0, label_spread: bool = True):
        super().__init__()
        ch = _channels(size.bit_length() - 3, width)[::-1]  # working size first
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(1, ch[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for a, b in zip(ch, ch[1:], strict=False):
            layers += [spectral_norm(nn.Conv2d(a, b, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)
        self.mbstd = mbstd
        self.label_spread = bool(n_labels) and mbstd and label_spread
        extra = int(mbstd) + int(self.label_spread)
        self.head = spectral_norm(nn.Conv2d(ch[-1] + extra, 1, 4))
        self.project = spectral_norm(nn.Linear(n_labels, ch[-1], bias=False)) if n_labels else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, size, size) in [-1, 1][, (B, labels)] -> (B,) scores of "real"."""
        h = self.net(x)
        feats = h
        if self.project is not None and y is None:
            raise ArtforgeError("this discriminator is conditional and needs labels")
        if self.mbstd:  # how much the batch varies, as one more feature map (as in progressive GANs)
            spread = [h.float().std(0, unbiased=False).mean() if len(h) > 1 else h.new_zeros((), dtype=torch.float)]
            if self.label_spread:
                spread.append(_within_label_spread(h.float(), y))
            h = torch.cat([h, *(v.to(h.dtype).expand(len(h), 1, *h.shape[2:]) for v in spread)], 1)
        score = self.head(h).flatten()
        if self.project is not None:
            score = score + (self.project(y.to(feats.dtype)) * feats.sum((2, 3))).sum(1)
        return score


def _within_label_spread(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The features' standard deviation within groups of one label vector, pooled over the batch.

    A conditional generator that draws one glyph per label keeps the whole batch's spread (the
    labels differ) but has none within a label; real glyphs sharing a label differ. Fakes are
    judged with the labels of the real glyphs beside them, so both batches have the same groups."""
    _, group = torch.unique(y, dim=0, return_inverse=True)
    n_groups = int(group.max()) + 1 if len(group) else 0
    if len(h) - n_groups < 1:  # every label once: nothing to compare
        return h.new_zeros(())
    flat = h.flatten(1)
    sums = flat.new_zeros(n_groups, flat.shape[1]).index_add_(0, group, flat)
    counts = torch.bincount(group, minlength=n_groups).to(flat.dtype)[:, None]
    resid = flat - (sums / counts)[group]
    return (resid.square().sum(0) / (len(h) - n_groups) + 1e-8).sqrt().mean()


def _shift_and_cut(x: torch.Tensor) -> torch.Tensor:
    """Each picture shifted by up to size/8 pixels each way (background comes in) and a square of
    side size/4 blanked; differentiable in ``x``."""
    B, _, H, W = x.shape
    dev = x.device
    s = max(1, H // 8)
    pad = F.pad(x, (s, s, s, s), value=-1.0)
    dy = torch.randint(0, 2 * s + 1, (B, 1, 1), device=dev)
    dx = torch.randint(0, 2 * s + 1, (B, 1, 1), device=dev)
    rows = (torch.arange(H, device=dev).view(1, H, 1) + dy).expand(B, H, W)
    cols = (torch.arange(W, device=dev).view(1, 1, W) + dx).expand(B, H, W)
    x = pad[torch.arange(B, device=dev).view(B, 1, 1), 0, rows, cols][:, None]
    k = max(1, H // 4)
    cy = torch.randint(0, H - k + 1, (B, 1, 1, 1), device=dev)
    cx = torch.randint(0, W - k + 1, (B, 1, 1, 1), device=dev)
    r = torch.arange(H, device=dev).view(1, 1, H, 1)
    c = torch.arange(W, device=dev).view(1, 1, 1, W)
    return x.masked_fill((r >= cy) & (r < cy + k) & (c >= cx) & (c < cx + k), -1.0)


def _upscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, s, s) -> (B, size, size), bilinear."""
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x[:, 0]


class SigilGAN(LabelBank, ArtModel):
    name = "sigil-dcgan"
    description = "DCGAN over binary glyph bitmaps: new sigils from noise"
    Config = SigilGANConfig
    codecs = ("binary",)
    conditional_twin = "sigil-cdcgan"
    presets = {
        "tiny": {"latent": 8, "width": 4},
        "small": {"latent": 64, "width": 16},  # generator 0.31M + discriminator 0.17M parameters
        "base": {"latent": 128, "width": 64},  # for a GPU
    }
    # Constant rate, beta1 = 0 (as in SN-GAN); no clipping; the EMA of the weights samples. The
    # batch is split between the discriminator updates: 128 = two updates on 64 real glyphs each.
    train_defaults = {"lr": 2e-4, "batch_size": 128, "beta1": 0.0, "beta2": 0.999, "grad_clip": 0.0,
                      "weight_decay": 0.0, "ema": 0.999, "min_lr_ratio": 1.0, "warmup_steps": 0}
    onnx_sampler = "artforge.onnx_runtime:latent_decoder"

    @classmethod
    def check_training_config(cls, config: SigilGANConfig) -> None:
        if not config.mode_seek >= 0:  # a negative weight trained without the term, and without a word
            raise ArtforgeError(f"{cls.name}: mode_seek must be 0 or more, got {config.mode_seek}")

    def __init__(self, config: SigilGANConfig, info: DataInfo):
        super().__init__(config, info)
        if len(info.token_shape) != 2 or info.token_shape[0] != info.token_shape[1]:
            raise ArtforgeError(f"{self.name} needs square bitmaps, got token shape {info.token_shape}")
        if config.latent < 1 or config.width < 1 or config.scale < 1 or config.d_steps < 1:
            raise ArtforgeError(f"{self.name}: latent, width, scale and d_steps must be positive")
        size = info.token_shape[0]
        work = size // config.scale
        if size % config.scale or work < 8 or work & (work - 1):
            raise ArtforgeError(f"{self.name} works at glyph size / scale, which must be a power of two of at "
                                f"least 8: {size}x{size} / {config.scale} is not; pick another --set scale=")
        self.size, self.work = size, work
        self.init_label_bank(info.label_columns)
        self._turn = 0  # which slice of the batch the next discriminator update takes
        self.G = Generator(config.latent, work, config.width, self.n_labels)
        self.D = Discriminator(work, config.width, config.mbstd, self.n_labels, getattr(config, "label_spread", False))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and not hasattr(m, "parametrizations"):
                nn.init.normal_(m.weight, 0.0, 0.02)
        if self.G.embed is not None:  # class codes as large as the noise codes they sit beside
            nn.init.normal_(self.G.embed.weight, 0.0, 1.0)
            for lin in self.G.film.values():  # modulation starts as the identity
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    # -- training -------------------------------------------------------------------------------
    @property
    def phases(self) -> list[str]:
        return ["d"] * self.config.d_steps + ["g"]

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        return [p for p in (self.D if phase == "d" else self.G).parameters() if p.requires_grad]

    def _judge(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.training and self.config.augment:
            x = _shift_and_cut(x)
        return self.D(x, y).float()

    def _real(self, tokens: torch.Tensor) -> torch.Tensor:
        """Binary glyphs -> grey pictures at the working size in [-1, 1] (area average)."""
        if self.training:
            tokens = augment(tokens, self.config.flip)
        return F.adaptive_avg_pool2d(tokens.float()[:, None], self.work) * 2 - 1

    def on_step(self, step: int, total_steps: int) -> None:
        self._turn = 0

    def forward(self, batch: dict[str, torch.Tensor], phase: str = "main") -> dict[str, torch.Tensor]:
        # Each discriminator update of a step takes its own slice of the batch, so two updates see
        # two sets of real glyphs (the batch size counts the glyphs of all of them).
        k = self.config.d_steps
        tokens, y = batch["tokens"], self.batch_labels(batch, remember=phase == "g")
        part = slice(None)
        if phase == "d" and len(tokens) >= k:
            turn = self._turn % k
            self._turn = turn + 1
            part = slice(turn * len(tokens) // k, (turn + 1) * len(tokens) // k)
        elif len(tokens) >= k:
            part = slice(0, len(tokens) // k)
        tokens, y = tokens[part], y[part] if y is not None else None
        z = torch.randn(tokens.shape[0], self.config.latent, device=tokens.device)
        if phase == "g":
            half = len(z) // 2
            seek = self.config.mode_seek > 0 and half > 0
            if seek and y is not None:  # pairs (i, half + i) share a label
                y = torch.cat([y[:half], y[:half], y[2 * half :]])
            fake = self.G(z, y)
            out = {"loss": -self._judge(fake, y).mean(), "ink": (fake.detach().float() > 0).float().mean()}
            if seek:
                # Mode seeking (Mao et al. 2019): two codes should give two glyphs, as far apart as
                # the codes are; the discriminator's batch spread cannot see a conditional generator
                # drawing one glyph per label, since the labels vary across the batch.
                a, b = fake[:half].float(), fake[half : 2 * half].float()
                ratio = (a - b).abs().mean() / (z[:half] - z[half : 2 * half]).abs().mean()
                out["spread"] = ratio.detach()
                out["loss"] = out["loss"] + self.config.mode_seek / (ratio + 1e-5)
            return out
        with torch.no_grad():
            fake_x = self.G(z, y)
        real, fake = self._judge(self._real(tokens), y), self._judge(fake_x, y)
        loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return {"loss": loss, "d_real": real.detach().mean(), "d_fake": fake.detach().mean()}

    # -- sampling -------------------------------------------------------------------------------
    def _codes(self, n: int, generator: torch.Generator | None, temperature: float) -> torch.Tensor:
        dev = generator.device if generator is not None else self.device
        return (torch.randn(n, self.config.latent, generator=generator, device=dev) * temperature).to(self.device)

    def ink_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent)[, (B, labels)] -> (B, H, W) at the glyph size; a pixel is ink where it is above 0."""
        return _upscale(self.G(z, y), self.size)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               labels: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        check_code_temperature(self.name, temperature)
        y = self.check_labels(labels, n, generator)
        z = self._codes(n, generator, temperature)
        if y is None:
            out = [(self.ink_logits(part) > 0).long() for part in z.split(256)]
        else:
            out = [(self.ink_logits(a, b) > 0).long() for a, b in zip(z.split(256), y.split(256), strict=True)]
        return torch.cat(out) if out else torch.zeros(0, self.size, self.size, dtype=torch.long)

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int, labels: torch.Tensor | None = None):
        raise ArtforgeError(f"{self.name} has no encoder to find the codes of given images")

    # -- figures --------------------------------------------------------------------------------
    def _held_out(self, batches: Iterable[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor | None]:
        batches = list(batches)
        if not batches:
            raise ArtforgeError(f"{self.name}: no held-out glyphs to compare samples with")
        tokens = torch.cat([b["tokens"] for b in batches]).to(self.device)
        if not self.needs_labels:
            return tokens, None
        return tokens, torch.cat([self.batch_labels(b) for b in batches]).to(self.device)

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """``loss`` is the stroke Fréchet distance of as many samples as held-out glyphs, drawn
        from fixed codes (and the held-out glyphs' labels), so the engine keeps the checkpoint
        whose samples look most like glyphs."""
        real, y = self._held_out(batches)
        fake = self.sample(len(real), generator=torch.Generator(self.device).manual_seed(1234), labels=y)
        fd = frechet(strokes(fake), strokes(real))
        out = {"loss": fd, "fd_strokes": fd, "fd_layout": frechet(pooled(fake), pooled(real)),
               "ink_samples": float(fake.float().mean()), "ink_real": float(real.float().mean())}
        if y is not None:  # does the code still matter with the label given? (1: one glyph per label)
            again = self.sample(len(real), generator=torch.Generator(self.device).manual_seed(4321), labels=y)
            out["same_label_iou"] = paired_iou(fake, again)
        return out

    @torch.no_grad()
    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]], codec: Any, splits: int = 8) -> dict[str, float]:
        """Distances to one half of the held-out glyphs, from sets of the same size: the other
        half (the floor: real against real), the model's samples, and pixels drawn independently
        with each pixel's held-out ink frequency (the right amount of ink in the right places, no
        shapes). A conditional model draws its samples with the other half's labels, and is also
        asked whether its samples carry their labels (see ``label_match`` and ``label_floor``).

        Each figure is the mean over ``splits`` random halvings, each with new samples and noise,
        and ``..._sd`` its standard deviation: with about 120 glyphs a side, one halving alone
        moves the stroke distance by a third or more."""
        real, y = self._held_out(batches)
        k = len(real) // 2
        if k < 2:
            raise ArtforgeError(f"{self.name} eval needs at least 4 held-out glyphs, got {len(real)}")
        halves = torch.Generator(self.device).manual_seed(0)  # the same halvings for every model
        gen = torch.Generator(self.device).manual_seed(1)
        freq = real.float().mean(0)
        rows: dict[str, list[float]] = {}
        out: dict[str, float] = self.label_floor(real, y) if y is not None else {}
        for _ in range(splits):
            perm = torch.randperm(len(real), generator=halves, device=self.device)
            ref, other = real[perm[:k]], real[perm[k : 2 * k]]
            fake = self.sample(k, generator=gen, labels=y[perm[k : 2 * k]] if y is not None else None)
            noise = (torch.rand(k, *real.shape[1:], generator=gen, device=self.device) < freq).long()
            for name, s in (("real", other), ("samples", fake), ("pixel_noise", noise)):
                rows.setdefault(f"fd_strokes_{name}", []).append(frechet(strokes(s), strokes(ref)))
                rows.setdefault(f"fd_layout_{name}", []).append(frechet(pooled(s), pooled(ref)))
                rows.setdefault(f"nearest_iou_{name}", []).append(nearest_iou(s, ref))
            rows.setdefault("ink_samples", []).append(float(fake.float().mean()))
            if y is not None:
                for key, v in self.label_match(real, y, gen).items():
                    rows.setdefault(key, []).append(v)
        for key, vals in rows.items():
            t = torch.tensor(vals, dtype=torch.float64)
            out[key] = float(t.mean())
            if key.startswith(("fd_", "nearest_", "label_match_s", "same_label_iou_s")) and len(t) > 1:
                out[f"{key}_sd"] = float(t.std())
        out["ink_real"], out["compared"], out["splits"] = float(real.float().mean()), float(k), float(splits)
        return out

    @torch.no_grad()
    def label_floor(self, real: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """What real glyphs score on ``label_match``'s questions: ``label_match_real``, how often
        a held-out glyph's nearest other held-out glyph (ink IoU) has its label (the reader's
        ceiling), and ``same_label_iou_real``, the mean ink IoU of two held-out glyphs with one
        label."""
        iou = iou_matrix(real, real)
        pairs = (y[:, None, :] == y[None, :, :]).all(-1)
        pairs.fill_diagonal_(False)
        iou.fill_diagonal_(-1)  # not itself
        same = (y[iou.argmax(1)] == y).all(1).float()
        return {"label_match_real": float(same.mean()),
                "same_label_iou_real": float(iou[pairs].mean()) if bool(pairs.any()) else float("nan")}

    @torch.no_grad()
    def label_match(self, real: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """Does a sample drawn with label L look like the real glyphs labelled L? A sample drawn
        with each held-out glyph's label is "read back" as the label of its nearest held-out
        glyph (ink IoU): ``label_match_samples`` is how often that gives the label it was drawn
        with, ``label_match_shuffled`` the same read labels against those labels shuffled
        (chance); ``label_floor`` gives the reader's ceiling on real glyphs. And whether the code
        still matters once the label is given: ``same_label_iou_samples``, the ink IoU of two
        samples drawn with one label from two codes (1 when a label draws one glyph)."""
        fake = self.sample(len(real), generator=generator, labels=y)
        again = self.sample(len(real), generator=generator, labels=y)
        read = y[nearest(fake, real)[1]]
        perm = torch.randperm(len(y), generator=generator, device=generator.device).to(y.device)
        return {"label_match_samples": float((read == y).all(1).float().mean()),
                "label_match_shuffled": float((read == y[perm]).all(1).float().mean()),
                "same_label_iou_samples": paired_iou(fake, again)}

    # -- export ---------------------------------------------------------------------------------
    def onnx_modules(self) -> list[OnnxModule]:
        g = torch.Generator().manual_seed(0)
        inputs: tuple[torch.Tensor, ...] = (torch.randn(5, self.config.latent, generator=g),)
        check: tuple[torch.Tensor, ...] = (torch.randn(3, self.config.latent, generator=g),)
        names, axes = ["z"], {"z": {0: "batch"}, "logits": {0: "batch"}}
        if self.needs_labels:
            eye = torch.eye(self.n_labels)
            inputs += (eye[torch.randint(0, self.n_labels, (5,), generator=g)],)
            check += (eye[torch.randint(0, self.n_labels, (3,), generator=g)],)
            names.append("labels")
            axes["labels"] = {0: "batch"}
        return [OnnxModule("decoder", _TwoClassDecoder(self.G, self.size).eval(), inputs, names, ["logits"], axes,
                           check_inputs=check)]

    def onnx_manifest(self) -> dict:
        return {"latent_shape": [self.config.latent], "latent": "gaussian", "temperature": "latent",
                **self.label_manifest()}


@dataclass
class SigilCGANConfig(SigilGANConfig):
    # weight of the mode-seeking term: codes with one label must draw different glyphs (without it every
    # code drew one glyph per label, docs/plugins/sigil.md)
    mode_seek: float = 0.2
    label_spread: bool = True  # the discriminator also sees how much glyphs sharing a label differ


class SigilCGAN(SigilGAN):
    """The same DCGAN, told each glyph's label (its script or symbol family): ``--label
    categories=runic`` draws runes. The generator takes the label's embedding at its input and in
    every norm layer; the discriminator is a projection discriminator."""

    name = "sigil-cdcgan"
    description = "class-conditional DCGAN over glyphs: sigils of a chosen script or family (--label)"
    needs_labels = True
    conditional_twin = ""
    Config = SigilCGANConfig


class _TwoClassDecoder(nn.Module):
    """The generator as (B, 2, H, W) logits (background 0, ink), the shape the generic ONNX
    sampler reads: its argmax is where the ink logit is above 0."""

    def __init__(self, g: Generator, size: int):
        super().__init__()
        self.g, self.size = g, size

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        ink = _upscale(self.g(z, labels), self.size)
        return torch.stack([torch.zeros_like(ink), ink], 1)
