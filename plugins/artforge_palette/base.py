"""What every palette model shares: the loss, the figures, sampling, interpolation and ONNX export.

A palette model maps index grids to a code and back to per-pixel logits over the palette, and is
trained with a softmax cross-entropy over palette indices at every pixel (the seed project used
independent sigmoids, which do not make a distribution over colours). Subclasses provide

- ``posterior(tokens, y)``: the encoder's output, a dict (``z``; ``mu``/``logvar``; ``logits``),
- ``code(post)``: the deterministic code (mean or mode), ``draw(post, train, generator=None)``: a
  code sampled from q (relaxed while training for Gumbel-softmax), ``kl(post)``: KL(q || prior) per image,
- ``prior(n, generator, temperature)``: codes for new samples, ``decode(z, y)``: logits.

Figures are in nats per image (the sum over pixels), so the ELBO reads as a code length that can
be set beside the size of the same index maps as PNG files.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artforge.augment import augment
from artforge.conditioning import LabelBank
from artforge.errors import ArtforgeError
from artforge.models import ArtModel, DataInfo, OnnxModule
from artforge.sampling import check_code_temperature


class PaletteModel(LabelBank, ArtModel):
    conditional_twin = "palette-cvae"
    codecs = ("palette",)
    train_defaults = {"lr": 2e-3, "batch_size": 64, "weight_decay": 0.0, "grad_clip": 1.0}
    onnx_sampler = "artforge.onnx_runtime:latent_decoder"
    #: "gaussian" or "categorical" (what the ONNX sampler draws), "fitted" for plain AEs
    latent: ClassVar[str] = "gaussian"
    variational: ClassVar[bool] = True
    EVAL_SEED = 11  # seeds the ELBO's posterior sample of each held-out image (``held_out_draw``)

    def __init__(self, config: Any, info: DataInfo):
        super().__init__(config, info)
        if len(info.token_shape) != 2:
            raise ArtforgeError(f"{self.name} needs 2-D index grids, got token shape {info.token_shape}")
        self.H, self.W = info.token_shape
        if getattr(config, "turn", False) and self.H != self.W:
            raise ArtforgeError(f"{self.name}: turn=true needs square images, got {self.H}x{self.W}")
        if not 0 <= int(getattr(config, "shift", 0)) < min(self.H, self.W):
            raise ArtforgeError(f"{self.name}: shift must be 0 to {min(self.H, self.W) - 1} pixels, "
                                f"got {getattr(config, 'shift', 0)}")
        self._check_sizes(config)
        self.V = info.vocab_size
        self.init_label_bank(info.label_columns)
        self.beta_now = float(getattr(config, "beta", 1.0))

    @classmethod
    def check_training_config(cls, config: Any) -> None:
        """The KL weight and its warm-up, the Gumbel temperature schedule: read only while training."""
        for key in ("beta", "kl_warmup", "anneal"):
            if float(getattr(config, key, 0.0)) < 0:
                raise ArtforgeError(f"{cls.name}: {key} must be 0 or more, got {getattr(config, key)}")
        for key in ("tau_start", "tau_end"):  # Gumbel-softmax temperatures divide the logits
            if hasattr(config, key) and not float(getattr(config, key)) > 0:
                raise ArtforgeError(f"{cls.name}: {key} must be above 0, got {getattr(config, key)}")

    def _check_sizes(self, config: Any) -> None:
        """Refuse, in one line naming the field, sizes and rates no run could use; torch builds a
        zero-width layer without a word and only the first step fails, as an internal error."""
        for key in ("latent", "embed", "pixel", "latent_channels", "categories"):
            if hasattr(config, key) and int(getattr(config, key)) < 1:
                raise ArtforgeError(f"{self.name}: {key} must be at least 1, got {getattr(config, key)}")
        for key in ("hidden", "channels"):
            widths = tuple(getattr(config, key, ()) or ())
            if any(int(w) < 1 for w in widths) or (key == "channels" and hasattr(config, key) and not widths):
                raise ArtforgeError(f"{self.name}: {key} must be widths of at least 1, got "
                                    f"{','.join(map(str, widths)) or '(none)'}")
        if int(getattr(config, "blocks", 0)) < 0:
            raise ArtforgeError(f"{self.name}: blocks must be 0 or more, got {config.blocks}")

    # -- the pieces subclasses provide ----------------------------------------------------------
    latent_shape: tuple[int, ...]

    def posterior(self, tokens: torch.Tensor, y: torch.Tensor | None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def code(self, post: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def draw(self, post: dict[str, torch.Tensor], train: bool,
             generator: torch.Generator | None = None) -> torch.Tensor:
        return self.code(post)

    def kl(self, post: dict[str, torch.Tensor]) -> torch.Tensor:
        return next(iter(post.values())).new_zeros(next(iter(post.values())).shape[0])

    def prior(self, n: int, generator: torch.Generator | None, temperature: float) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------------
    def held_out_draw(self, post: dict[str, torch.Tensor], first: int = 0) -> torch.Tensor:
        """The ELBO's one posterior sample for images ``first``, ``first + 1``, ... of an evaluation:
        each image's draw comes from a generator seeded by its place, so the figures depend neither
        on the batch size (a draw from the global stream did: on a CPU, ``-b 1`` and ``-b 256`` gave
        different samples whenever a code had fewer than 16 numbers) nor on the random state."""
        any_ = next(iter(post.values()))
        g = torch.Generator(any_.device)
        parts = []
        for i in range(any_.shape[0]):
            g.manual_seed(self.EVAL_SEED * 1_000_003 + first + i)
            parts.append(self.draw({k: v[i : i + 1] for k, v in post.items()}, train=False, generator=g))
        return torch.cat(parts) if parts else self.code(post)

    def _recon(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the palette, summed over the pixels of each image (nats per image)."""
        return F.cross_entropy(logits.float(), tokens, reduction="none").flatten(1).sum(1)

    # -- training -------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], phase: str = "main") -> dict[str, torch.Tensor]:
        tokens = batch["tokens"]
        y = self.batch_labels(batch)  # counted for sampling without --label while training
        if self.training:
            c = self.config
            tokens = augment(tokens, getattr(c, "flip", False), getattr(c, "turn", False), getattr(c, "shift", 0))
        post = self.posterior(tokens, y)
        z = self.draw(post, train=self.training)
        logits = self.decode(z, y)
        recon = self._recon(logits, tokens)
        kl = self.kl(post)
        pixels = self.H * self.W
        out = {"loss": (recon + self.beta_now * kl).mean() / pixels, "recon_nats": recon.detach().mean()}
        if self.variational:
            out["kl_nats"] = kl.detach().mean()
        out["pixel_acc"] = (logits.detach().argmax(1) == tokens).float().mean()
        return out

    # -- figures ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _figures(self, batches: Iterable[dict[str, torch.Tensor]], keep_tokens: bool = False,
                 refine: int = 0) -> dict[str, Any]:
        sums = {"recon": 0.0, "recon_code": 0.0, "kl": 0.0, "correct": 0, "exact": 0, "images": 0}
        kept = []
        seen = 0
        for batch in batches:
            tokens = batch["tokens"]
            y = self.batch_labels(batch)
            post = self.posterior(tokens, y)
            code = self.code(post)
            if refine:
                code = self.refine_code(tokens, y, code, refine)
            code_logits = self.decode(code, y)
            recon_code = self._recon(code_logits, tokens)
            recon = self._recon(self.decode(self.held_out_draw(post, seen), y), tokens) if self.variational \
                else recon_code
            seen += tokens.shape[0]
            pred = code_logits.argmax(1)
            hit = pred == tokens
            sums["recon"] += float(recon.sum())
            sums["recon_code"] += float(recon_code.sum())
            sums["kl"] += float(self.kl(post).sum())
            sums["correct"] += int(hit.sum())
            sums["exact"] += int(hit.flatten(1).all(1).sum())
            sums["images"] += tokens.shape[0]
            if keep_tokens:
                kept.append((tokens.cpu().numpy(), pred.cpu().numpy()))
        if keep_tokens:
            empty = np.zeros((0, self.H, self.W), np.int64)
            sums["tokens"] = np.concatenate([k[0] for k in kept]) if kept else empty
            sums["pred"] = np.concatenate([k[1] for k in kept]) if kept else empty
        return sums

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        s = self._figures(batches)
        n = max(1, s["images"])
        out = {"loss": (s["recon"] + s["kl"]) / n / (self.H * self.W), "recon_nats": s["recon"] / n,
               "pixel_acc": s["correct"] / (n * self.H * self.W)}
        if self.variational:
            out["kl_nats"] = s["kl"] / n
        return out

    @torch.no_grad()
    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]], codec: Any, refine: int = 0) -> dict[str, float]:
        """Pixel and exact-image accuracy of reconstructions from the code (mean / mode); recon
        cross-entropy, KL and the negative ELBO in nats per image (one posterior sample per image);
        and the size of the same index maps as optimised indexed PNG files. ``refine`` > 0 (plain
        autoencoders): codes polished by that many gradient steps first (see ``refine_code``)."""
        self._check_refine(refine)
        s = self._figures(batches, keep_tokens=True, refine=refine)
        n = max(1, s["images"])
        pixels = self.H * self.W
        out = {"images": float(s["images"]), "pixel_accuracy": s["correct"] / (n * pixels),
               "exact_image_accuracy": s["exact"] / n}
        if refine:
            out["refine_steps"] = float(refine)
        if self.variational:
            nelbo = (s["recon"] + s["kl"]) / n
            out.update({"recon_nats_per_image": s["recon"] / n, "kl_nats_per_image": s["kl"] / n,
                        "elbo_nats_per_image": nelbo, "elbo_bits_per_image": nelbo / math.log(2),
                        "elbo_bits_per_pixel": nelbo / math.log(2) / pixels,
                        "code_recon_nats_per_image": s["recon_code"] / n})
        else:
            out["recon_nats_per_image"] = s["recon_code"] / n
        out["loss"] = (s["recon"] + s["kl"]) / n / pixels
        if codec is not None:
            out.update(colour_figures(s["tokens"], s["pred"], np.asarray(codec.palette)))
        png = png_sizes(s["tokens"], codec.palette) if codec is not None else None
        if png is not None:
            out["png_bits_per_image"] = png[0]
            out["png_idat_bits_per_image"] = png[1]
            if self.variational:
                out["elbo_to_png_ratio"] = out["elbo_bits_per_image"] / png[0]
        return out

    def _check_refine(self, refine: int) -> None:
        if refine and not self.refinable:
            raise ArtforgeError(f"{self.name} has no point code to refine; --refine is for palette-ae and "
                                "palette-conv-ae")

    # -- using ----------------------------------------------------------------------------------
    def _argmax(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.decode(z, y).argmax(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               labels: torch.Tensor | None = None, top_k: int | None = None, top_p: float | None = None,
               **options: Any) -> torch.Tensor:
        """New index grids: codes from the prior (spread scaled by ``temperature``), each pixel's
        most likely colour."""
        if top_k is not None or top_p is not None or options:
            raise ArtforgeError(f"{self.name} decodes each pixel's most likely colour; --top-k/--top-p do not apply")
        if self.latent != "categorical":  # Gaussian codes are scaled by it; categorical ones are drawn as they are
            check_code_temperature(self.name, temperature)
        y = self.check_labels(labels, n, generator)
        return self._argmax(self.prior(n, generator, temperature), y)

    @torch.no_grad()
    def reconstruct(self, tokens: torch.Tensor, labels: torch.Tensor | None = None, refine: int = 0) -> torch.Tensor:
        """Each grid decoded from its own code (mean / mode): the most likely colour per pixel;
        ``refine`` > 0 (plain autoencoders) polishes each code first (see ``refine_code``)."""
        if self.needs_labels and labels is None:
            raise ArtforgeError(f"{self.name} reconstructs an image with its own labels; pass them")
        self._check_refine(refine)
        tokens = tokens.to(self.device)
        y = self.check_labels(labels, tokens.shape[0])
        code = self.code(self.posterior(tokens, y))
        if refine:
            code = self.refine_code(tokens, y, code, refine)
        return self._argmax(code, y)

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        """``steps`` grids decoded from codes on the straight line between the codes of a and b."""
        if steps < 2:
            raise ArtforgeError("interpolation needs at least 2 steps (-n 2 or more)")
        y = self.check_labels(labels, 1)
        za = self.code(self.posterior(a.to(self.device).reshape(1, self.H, self.W), y))
        zb = self.code(self.posterior(b.to(self.device).reshape(1, self.H, self.W), y))
        t = torch.linspace(0, 1, steps, device=self.device).view(-1, *([1] * (za.dim() - 1)))
        return self._argmax((1 - t) * za + t * zb, y.expand(steps, -1) if y is not None else None)

    # -- export ---------------------------------------------------------------------------------
    def onnx_decoder(self) -> nn.Module:
        """The module ONNX gets: ``z`` (and ``labels``) -> logits (B, V, H, W)."""
        return _Decoder(self)

    def onnx_modules(self) -> list[OnnxModule]:
        g = torch.Generator().manual_seed(0)
        z, z_check = torch.randn(5, *self.latent_shape, generator=g), torch.randn(3, *self.latent_shape, generator=g)
        if self.latent == "categorical":
            k = self.latent_shape[-1]
            z = F.one_hot(torch.randint(0, k, (5, *self.latent_shape[:-1]), generator=g), k).float()
            z_check = F.one_hot(torch.randint(0, k, (3, *self.latent_shape[:-1]), generator=g), k).float()
        inputs, check, names = (z,), (z_check,), ["z"]
        axes = {"z": {0: "batch"}, "logits": {0: "batch"}}
        if self.needs_labels:
            inputs += ((torch.rand(5, self.n_labels, generator=g) < 0.5).float(),)
            check += ((torch.rand(3, self.n_labels, generator=g) < 0.5).float(),)
            names.append("labels")
            axes["labels"] = {0: "batch"}
        return [OnnxModule("decoder", self.onnx_decoder().eval(), inputs, names, ["logits"], axes,
                           check_inputs=check)]

    def onnx_manifest(self) -> dict:
        info = {"latent_shape": list(self.latent_shape),
                "latent": "categorical" if self.latent == "categorical" else "gaussian",
                "temperature": "latent"}
        return info | self.label_manifest()


class _Decoder(nn.Module):
    def __init__(self, m: PaletteModel):
        super().__init__()
        self.m = m

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.m.decode(z, labels)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over all latent numbers of each item (nats)."""
    return 0.5 * (mu.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float()).flatten(1).sum(1)


def colour_figures(tokens: np.ndarray, pred: np.ndarray, palette: np.ndarray) -> dict[str, float]:
    """How wrong the reconstructed colours are, beyond right/wrong: accuracy on the pixels that are
    not fully transparent (backgrounds are easy and inflate ``pixel_accuracy``), and the mean
    CIELAB delta E between each visible pixel's colour and its reconstruction (0 when exact; a
    wrong alpha counts as the largest distance in the palette)."""
    from artforge_palette.colorspace import srgb_to_lab

    visible = palette[tokens, 3] > 0
    if not visible.any():
        return {}
    t, p = tokens[visible], pred[visible]
    lab = srgb_to_lab(palette[:, :3].astype(np.uint8))
    de = np.linalg.norm(lab[t] - lab[p], axis=-1)
    worst = float(np.linalg.norm(lab[:, None] - lab[None], axis=-1).max())
    de = np.where(palette[t, 3] == palette[p, 3], de, worst)
    return {"visible_pixel_accuracy": float((t == p).mean()), "visible_mean_delta_e": float(de.mean())}


def png_sizes(tokens: np.ndarray, palette: np.ndarray) -> tuple[float, float] | None:
    """Mean bits per image of each index map as an optimised 8-bit indexed PNG (whole file, and
    the compressed pixel data alone: IDAT payload). None when the palette exceeds 256 entries."""
    if len(palette) > 256 or len(tokens) == 0:
        return None
    from PIL import Image

    pal = palette[:, :3].reshape(-1).tolist()
    alpha = bytes(palette[:, 3].tolist())
    total = idat = 0
    for t in tokens.astype(np.uint8):
        im = Image.fromarray(t, "P")
        im.putpalette(pal)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True, transparency=alpha)
        data = buf.getvalue()
        total += len(data)
        pos = 8
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            if kind == b"IDAT":
                idat += length
            pos += 12 + length
    return 8.0 * total / len(tokens), 8.0 * idat / len(tokens)
