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


@hookimpl
def register_models(register):
    from artforge_palette.ae import PaletteAE, PaletteConvAE
    from artforge_palette.gsvae import PaletteGSVAE
    from artforge_palette.vae import PaletteConvVAE, PaletteCVAE, PaletteVAE

    for cls in (PaletteAE, PaletteConvAE, PaletteVAE, PaletteConvVAE, PaletteCVAE, PaletteGSVAE):
        register(cls)


@hookimpl
def register_commands(cli):
    from artforge_palette.commands import palette

    cli.add_command(palette)
