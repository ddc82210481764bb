"""A small plugin used by the tests: a 2-level grey codec, its renderer, a unigram model."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from artforge.codecs import Codec
from artforge.hookspecs import hookimpl


class Gray2Codec(Codec):
    name = "gray2"
    description = "black or white per pixel"
    spec_help = "gray2"

    def __init__(self):
        self.spec = "gray2"
        self.vocab_size = 2

    @classmethod
    def from_spec(cls, args):
        return cls()

    def encode(self, images):
        return (np.asarray(images)[..., :3].mean(-1) >= 128).astype(np.uint8)

    def decode(self, tokens):
        t = self.check_tokens(tokens).astype(np.uint8) * 255
        return np.stack([t, t, t, np.full_like(t, 255)], -1)


def red_renderer(codec):
    """Paints white tokens red, so a test can tell this renderer was used."""
    import torch

    from artforge.renderers import ColorTableRenderer

    return ColorTableRenderer(torch.tensor([[0, 0, 0, 255], [255, 0, 0, 255]], dtype=torch.uint8))


@functools.cache
def _model_class():
    import torch
    import torch.nn.functional as F

    from artforge.models import ArtModel

    @dataclass
    class UnigramConfig:
        smoothing: float = 0.0
        nan_at_step: int = -1  # make the loss NaN from this step on (tests the guard)

    class Unigram(ArtModel):
        """Independent per-position categorical distributions: the smallest real model."""

        name = "unigram"
        description = "per-position token frequencies (a test model)"
        Config = UnigramConfig
        train_defaults = {"lr": 0.1, "batch_size": 8}
        onnx_sampler = "artforge.onnx_runtime:latent_decoder"

        def __init__(self, config, info):
            super().__init__(config, info)
            self.table = torch.nn.Parameter(torch.zeros(info.vocab_size, *info.token_shape))
            self.step = 0

        def on_step(self, step, total):
            self.step = step

        def forward(self, batch, phase="main"):
            t = batch["tokens"]
            logits = self.table.unsqueeze(0).expand(t.shape[0], *self.table.shape)
            loss = F.cross_entropy(logits, t, label_smoothing=self.config.smoothing)
            if 0 <= self.config.nan_at_step <= self.step and self.training:
                loss = loss * float("nan")
            return {"loss": loss}

        def sample(self, n, generator=None, temperature=1.0, labels=None, **_):
            probs = (self.table / max(temperature, 1e-6)).softmax(0).movedim(0, -1).reshape(-1, self.info.vocab_size)
            idx = torch.multinomial(probs, n, replacement=True, generator=generator)
            return idx.T.reshape(n, *self.info.token_shape)

        def onnx_modules(self):
            from artforge.models import OnnxModule

            dec = _Decoder(self.table)
            return [OnnxModule("decoder", dec, (torch.zeros(5, 1),), ["z"], ["logits"],
                               {"z": {0: "batch"}, "logits": {0: "batch"}}, check_inputs=(torch.ones(3, 1),))]

        def onnx_manifest(self):
            return {"latent_shape": [1], "latent": "gaussian", "sample_cells": True}

    class _Decoder(torch.nn.Module):
        def __init__(self, table):
            super().__init__()
            self.table = table

        def forward(self, z):
            return self.table.unsqueeze(0) + 0 * z.reshape(-1, *([1] * self.table.dim()))

    return Unigram


def __getattr__(name):  # lazily build the torch model class (keeps plugin listing torch-free)
    if name == "Unigram":
        return _model_class()
    raise AttributeError(name)


@hookimpl
def register_codecs(register):
    register(Gray2Codec)


@hookimpl
def register_renderers(register):
    register("gray2", red_renderer)


@hookimpl
def register_models(register):
    register("unigram", "toy_plugin:Unigram")
