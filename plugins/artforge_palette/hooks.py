"""Hook implementations of the palette plugin (heavy imports happen inside hooks)."""

from __future__ import annotations

from pathlib import Path

from artforge.hookspecs import hookimpl

DATA = Path(__file__).parent / "data"


@hookimpl
def register_codecs(register):
    from artforge_palette.codec import PaletteCodec

    register(PaletteCodec)


@hookimpl
def register_renderers(register):
    from artforge_palette.renderer import make_renderer

    register("palette", make_renderer)


@hookimpl
def register_datasets(register):
    register(
        "tiles32",
        DATA / "tiles32.npz",
        description="640 Dungeon Crawl Stone Soup tiles, 32x32 RGBA (CC0)",
        codec="palette:auto/32",
    )


MODELS = {
    "palette-ae": "artforge_palette.ae:PaletteAE",
    "palette-conv-ae": "artforge_palette.ae:PaletteConvAE",
    "palette-vae": "artforge_palette.vae:PaletteVAE",
    "palette-conv-vae": "artforge_palette.vae:PaletteConvVAE",
    "palette-cvae": "artforge_palette.vae:PaletteCVAE",
    "palette-gsvae": "artforge_palette.gsvae:PaletteGSVAE",
}


@hookimpl
def register_models(register):
    for name, target in MODELS.items():
        register(name, target)  # lazy: torch loads when a model is used


@hookimpl
def register_commands(cli):
    from artforge_palette.commands import palette

    cli.add_command(palette)
