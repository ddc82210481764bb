"""Hook implementations of the sigil plugin."""

from __future__ import annotations

from pathlib import Path

from artforge.hookspecs import hookimpl

DATA = Path(__file__).parent / "data"


@hookimpl
def register_codecs(register):
    from artforge_sigil.codec import BinaryCodec

    register(BinaryCodec)


@hookimpl
def register_renderers(register):
    register("binary", _renderer)


def _renderer(codec):
    import numpy as np
    import torch

    from artforge.renderers import ColorTableRenderer

    return ColorTableRenderer(torch.from_numpy(codec.decode(np.arange(2)[None])[0]))


@hookimpl
def register_datasets(register):
    register(
        "sigils64",
        DATA / "sigils64.npz",
        description="2440 alchemical, astrological, runic ... glyphs, 64x64 binary (OFL and free fonts)",
        codec="binary",
    )


MODELS = {
    "sigil-dcgan": "artforge_sigil.gan:SigilGAN",
    "sigil-cdcgan": "artforge_sigil.gan:SigilCGAN",
    "sigil-dae": "artforge_sigil.dae:SigilDAE",
}


@hookimpl
def register_models(register):
    for name, target in MODELS.items():
        register(name, target)  # lazy: torch loads when a model is used
