"""saml-net: picture -> Symbol Art layers in one pass (a vision encoder and a layer decoder).

After Neural Symbol Arts: a small CNN reads the picture into an 8x8 grid of features; ``layers``
learned queries, one per layer row, attend to them through a few transformer decoder blocks; each
query's head gives its layer's symbol (a softmax over ``symbols``), colour, opacity and four
corners. No Symbol Art data set is needed: the layers are drawn with the differentiable
:class:`SamlRenderer` and compared with the picture, so any cache of pictures trains it (``hsv``,
``palette`` or ``binary`` tokens, looked up to RGBA).

* Each query starts from an anchor square, quadtree-like: the back row covers the picture, rows in
  front get smaller squares on finer grids, so at initialisation the layers already tile the
  picture instead of piling up; the head predicts offsets from the anchor corners.
* While training, a layer's coverage is the symbols' coverages mixed by the softmax, on edges
  blurred over about ``blur`` pixels at first and ``blur_end`` at the end; the file gets the
  argmax symbol and rounded values.
* Coordinates are in pixels of the training picture (``S``x``S``, origin at its centre); in the
  game's 192x96 canvas the picture fills the middle 96x96 square, so they scale by 96/S.

Use it with ``artforge convert --codec saml:N,net=RUN`` (its layers are the start the fit refines;
``steps=0`` keeps them as they are) and ``artforge eval RUN [--refine STEPS]``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artforge.augment import augment
from artforge.errors import ArtforgeError
from artforge.models import ArtModel, DataInfo, OnnxModule
from artforge_saml.renderer import OFFSET, SamlRenderer
from artforge_saml.samlfile import ALPHA_STEPS
from artforge_saml.symbols import STAND_INS

BOX = 96  # the picture's square in the game canvas (192x96)
#: the stand-in symbols a layer may be drawn with, by name
SYMBOL_NAMES = {name: sid for sid, (name, _) in STAND_INS.items() if " " not in name}


@dataclass
class SamlNetConfig:
    layers: int = 16  # layer rows it predicts (the file may hold more: they stay empty)
    symbols: str = "square,circle"  # what a layer may draw: square, circle, triangle, diamond, donut
    width: int = 128  # feature width of encoder and decoder
    blocks: int = 3  # transformer decoder blocks
    heads: int = 4  # attention heads per decoder block (width must divide by it)
    blur: float = 0.7  # edge width (pixels of the training picture) of the soft renderer at first
    blur_end: float = 0.15  # ... and at the end of training (geometric in between)
    flip: bool = True  # random horizontal flips while training
    turn: bool = True  # and quarter turns (any picture is a fair example of picture -> layers)
    shift: int = 2  # and circular shifts by up to this many pixels


class SamlNet(ArtModel):
    name = "saml-net"
    description = "Picture -> Symbol Art layers in one pass: CNN encoder, layer-query decoder, rendering loss"
    usage = ("it turns pictures into layers rather than drawing new ones: "
             "artforge convert PICTURE -c saml:16,net=RUN -o out.saml")
    Config = SamlNetConfig
    codecs = ("hsv", "palette", "binary")
    presets = {
        "tiny": {"layers": 8, "width": 32, "blocks": 1, "heads": 2},
        "cpu": {"layers": 16, "width": 96, "blocks": 2},
        "gpu": {"layers": 64, "width": 256, "blocks": 4, "heads": 8, "symbols": "square,circle,triangle"},
    }
    train_defaults = {"lr": 1e-3, "batch_size": 32, "weight_decay": 0.01, "grad_clip": 1.0}
    refinable = True

    def __init__(self, config: SamlNetConfig, info: DataInfo):
        super().__init__(config, info)
        from artforge.codecs import codec_from_config

        c = config
        if len(info.token_shape) != 2 or info.token_shape[0] != info.token_shape[1] or info.token_shape[0] % 8:
            raise ArtforgeError(f"saml-net needs square pictures with sides a multiple of 8, got tokens "
                                f"{info.token_shape} (build the cache with --size 32, for example)")
        if not 1 <= c.layers <= 225:
            raise ArtforgeError(f"saml-net: layers must be 1..225, got {c.layers}")
        names = [s.strip() for s in c.symbols.split(",") if s.strip()]
        bad = [s for s in names if s not in SYMBOL_NAMES]
        if bad or not names:
            raise ArtforgeError(f"saml-net: unknown symbol(s) {', '.join(bad) or '(none)'}; "
                                f"choose from {', '.join(SYMBOL_NAMES)}")
        if not (c.blur > 0 and c.blur_end > 0):
            raise ArtforgeError("saml-net: blur and blur_end must be above 0")
        for key in ("width", "heads", "blocks"):  # a zero or negative one only failed at the first step
            if getattr(c, key) < 1:
                raise ArtforgeError(f"saml-net: {key} must be at least 1, got {getattr(c, key)}")
        if c.shift < 0:
            raise ArtforgeError(f"saml-net: shift must be 0 or more pixels, got {c.shift}")
        if c.width % c.heads:
            raise ArtforgeError(f"saml-net: width {c.width} is not a multiple of heads {c.heads}")
        self.S = info.token_shape[0]
        codec = codec_from_config(info.codec)
        colours = codec.decode(np.arange(info.vocab_size)[None, None])[0, 0].astype(np.float32) / 255
        colours[:, :3] *= colours[:, 3:]  # premultiplied: what the renderer composes
        self.register_buffer("colours", torch.from_numpy(colours), persistent=False)
        self.register_buffer("symbol_ids", torch.tensor([SYMBOL_NAMES[s] + 1 for s in names]), persistent=False)
        self.register_buffer("anchors", anchors(c.layers, self.S), persistent=False)

        w = c.width
        chans = [4, w // 4, w // 2, w]
        convs: list[nn.Module] = []
        for i in range(3):  # S -> S/8 feature grid
            convs += [nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1), nn.GroupNorm(1, chans[i + 1]), nn.GELU(),
                      nn.Conv2d(chans[i + 1], chans[i + 1], 3, 1, 1), nn.GroupNorm(1, chans[i + 1]), nn.GELU()]
        self.encoder = nn.Sequential(*convs)
        g = self.S // 8
        self.pos = nn.Parameter(torch.randn(1, g * g, w) * 0.02)
        self.queries = nn.Parameter(torch.randn(1, c.layers, w) * 0.02)
        self.anchor_embed = nn.Linear(4, w)  # each query knows its anchor square
        layer = nn.TransformerDecoderLayer(w, c.heads, 4 * w, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, c.blocks)
        self.norm = nn.LayerNorm(w)
        self.head = nn.Linear(w, len(names) + 3 + 1 + 8)
        with torch.no_grad():  # start as the anchors, fairly opaque, mid grey
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[len(names) + 3] = 2.0
        self.soft = SamlRenderer(self.S, self.S, softness=tuple(np.geomspace(0.5, 0.005, 12)))
        self.blur = c.blur

    # -- the network ----------------------------------------------------------------------------
    def pictures(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, S, S)`` tokens -> ``(B, 4, S, S)`` premultiplied RGBA."""
        return self.colours[tokens.long()].permute(0, 3, 1, 2)

    def predict(self, pictures: torch.Tensor) -> dict[str, torch.Tensor]:
        """Premultiplied RGBA ``(B, 4, S, S)`` -> the layers' symbol logits ``(B, L, K)``, colours
        ``(B, L, 3)`` and opacities ``(B, L)`` in 0..1, corners ``(B, L, 8)`` in picture pixels."""
        B = pictures.shape[0]
        feats = self.encoder(pictures).flatten(2).transpose(1, 2) + self.pos
        q = self.queries + self.anchor_embed(self.anchors[:, [0, 1, 6, 7]] / self.S)
        h = self.norm(self.decoder(q.expand(B, -1, -1), feats))
        out = self.head(h)
        k = len(self.symbol_ids)
        side = (self.anchors[:, 6] - self.anchors[:, 0]).clamp_min(1)[:, None]  # (L, 1)
        return {"symbol_logits": out[..., :k], "rgb": torch.sigmoid(out[..., k : k + 3]),
                "alpha": torch.sigmoid(out[..., k + 3]), "corners": self.anchors + out[..., k + 4 :] * side}

    def rows(self, pred: dict[str, torch.Tensor], scale: float = 1.0) -> torch.Tensor:
        """Float layer rows ``(B, L, 13)`` (argmax symbol) with corners scaled by ``scale``."""
        sym = self.symbol_ids[pred["symbol_logits"].argmax(-1)].to(pred["rgb"].dtype)
        return torch.cat([sym[..., None], pred["rgb"] * 255, pred["alpha"][..., None] * ALPHA_STEPS,
                          pred["corners"] * scale + OFFSET], -1)

    def on_step(self, step: int, total_steps: int) -> None:
        # sharp edges give corners gradients only from the pixels right at them, so start blurred;
        # ending sharper was worth about 1 dB of held-out PSNR in trials (hard, rounded layers)
        c = self.config
        self.blur = c.blur * (c.blur_end / c.blur) ** (step / max(1, total_steps))

    def forward(self, batch: dict[str, torch.Tensor], phase: str = "main") -> dict[str, torch.Tensor]:
        tokens = batch["tokens"].long()
        c = self.config
        if self.training and (c.flip or c.turn or c.shift):
            tokens = augment(tokens, flip=c.flip, turn=c.turn, shift=c.shift)
        target = self.pictures(tokens)
        pred = self.predict(target)
        probs = pred["symbol_logits"].float().softmax(-1)
        x = self.rows(pred).float()
        render = self.soft.premultiplied(x, blur=self.blur, mix=(probs, self.symbol_ids))
        loss = (render - target.float()).pow(2).mean()
        return {"loss": loss, "psnr_soft": -10 * torch.log10(loss.detach().clamp_min(1e-10))}

    # -- using ----------------------------------------------------------------------------------
    @torch.no_grad()
    def layers_for(self, pictures: torch.Tensor) -> torch.Tensor:
        """Premultiplied RGBA ``(B, 4, S, S)`` -> float rows ``(B, L, 13)`` in game coordinates
        (picture in the canvas's middle 96x96 square), front row first."""
        return self.rows(self.predict(pictures), BOX / self.S).float()

    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]], codec: Any, refine: int = 0) -> dict[str, float]:
        """PSNR (premultiplied RGBA over the picture's 96x96 box in the game canvas) of the one-pass
        layers, rounded as a .saml holds them, beside the quadtree mosaic of the same budget (the
        fit's start); ``refine`` > 0 also runs the fit for that many steps from each start."""
        from artforge_saml.fit import fit_picture, quantise

        canvas = SamlRenderer(2 * BOX, BOX).to(self.device)
        box = slice(BOX // 2, BOX + BOX // 2)
        sums: dict[str, float] = {}
        n = 0
        for batch in batches:
            with torch.no_grad():  # (the fit below needs gradients)
                pics = self.pictures(batch["tokens"].to(self.device))
                t = time.perf_counter()
                rows = quantise(self.layers_for(pics))
                sums["ms_per_picture_net"] = sums.get("ms_per_picture_net", 0.0) + (time.perf_counter() - t) * 1e3
                big = F.interpolate(pics.float(), scale_factor=BOX / self.S, mode="nearest")
                mse = (canvas.premultiplied(rows)[..., box] - big).pow(2).mean((1, 2, 3))
            add = {"psnr_net": (10 * torch.log10(1 / mse.clamp_min(1e-10))).tolist(),
                   "layers_used": (rows[..., 4] > 0).sum(1).float().tolist()}
            straight = _straight_rgba(pics)
            add["psnr_quadtree"] = []
            if refine:
                add["psnr_quadtree_fit"], add["psnr_net_fit"] = [], []
            for img, r in zip(straight, rows.cpu().numpy(), strict=True):
                t = time.perf_counter()
                q = fit_picture(img, self.config.layers, refine)  # refine 0: the quadtree mosaic alone
                t2 = time.perf_counter()
                add["psnr_quadtree"].append(q.psnr_baseline)
                if refine:
                    f = fit_picture(img, self.config.layers, refine, start=r[r[:, 4] > 0].astype(np.float32))
                    add["psnr_quadtree_fit"].append(q.psnr_fit)
                    add["psnr_net_fit"].append(f.psnr_fit)
                    add.setdefault("s_per_picture_quadtree_fit", []).append(t2 - t)
                    add.setdefault("s_per_picture_net_fit", []).append(time.perf_counter() - t2)
            for k, v in add.items():
                sums[k] = sums.get(k, 0.0) + float(np.sum(v))
            n += len(pics)
        out = {k: v / max(n, 1) for k, v in sums.items()}  # (net times are summed per batch)
        out["images"] = float(n)
        if refine:
            out["refine_steps"] = float(refine)
        return out

    def onnx_modules(self) -> list[OnnxModule]:
        gen = torch.Generator().manual_seed(0)
        pics = torch.rand(3, 4, self.S, self.S, generator=gen)
        check = torch.rand(2, 4, self.S, self.S, generator=gen)
        return [OnnxModule("layers", _Export(self), (pics,), ["picture"], ["layers"],
                           {"picture": {0: "batch"}, "layers": {0: "batch"}}, check_inputs=(check,))]

    def onnx_manifest(self) -> dict:
        return {"picture_size": self.S, "layers": self.config.layers, "box": BOX,
                "picture": "premultiplied RGBA in 0..1, (B, 4, S, S)",
                "layers_out": "float rows (B, L, 13): symbol id + 1, r, g, b, alpha step, 8 corners + 128"}


class _Export(nn.Module):
    def __init__(self, net: SamlNet):
        super().__init__()
        self.net = net

    def forward(self, picture: torch.Tensor) -> torch.Tensor:
        return self.net.rows(self.net.predict(picture), BOX / self.net.S)


def anchors(layers: int, size: int) -> torch.Tensor:
    """One square per layer as 8 corner values (lt, lb, rt, rb; x then y, origin at the picture's
    centre): the back row covers the picture, rows in front sit on ever finer grids (2x2, 4x4 ...),
    the frontmost grid only partly filled, its cells spread evenly. Row 0 (front) is the finest."""
    boxes: list[tuple[float, float, float]] = []  # (x0, y0, side), back to front
    level = 0
    while len(boxes) < layers:
        k = 2**level
        cells = [(i, j) for i in range(k) for j in range(k)]
        room = layers - len(boxes)
        if room < len(cells):
            cells = [cells[round(t)] for t in np.linspace(0, len(cells) - 1, room)]
        side = size / k
        boxes += [(-size / 2 + j * side, -size / 2 + i * side, side) for i, j in cells]
        level += 1
    rows = [[x, y, x, y + s, x + s, y, x + s, y + s] for x, y, s in reversed(boxes)]
    return torch.tensor(rows, dtype=torch.float32)


def _straight_rgba(pics: torch.Tensor) -> np.ndarray:
    """Premultiplied ``(B, 4, S, S)`` -> straight uint8 RGBA ``(B, S, S, 4)`` (what fit_picture reads)."""
    p = pics.float().cpu().movedim(1, -1)
    a = p[..., 3:]
    rgb = torch.where(a > 0, p[..., :3] / a.clamp_min(1e-6), torch.zeros_like(p[..., :3]))
    return (torch.cat([rgb, a], -1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()

