"""Hook implementations of the HSV plugin (kept light: heavy imports happen inside hooks)."""

from __future__ import annotations

from pathlib import Path

from artforge.hookspecs import hookimpl

DATA = Path(__file__).parent / "data"


@hookimpl
def register_codecs(register):
    from artforge_hsv.codec import HSVCodec

    register(HSVCodec)


@hookimpl
def register_renderers(register):
    from artforge_hsv.renderer import make_renderer

    register("hsv", make_renderer)


@hookimpl
def register_datasets(register):
    register(
        "emoji32",
        DATA / "emoji32.npz",
        description="512 Noto Color Emoji, 32x32 RGBA (Apache-2.0)",
        codec="hsv544",
    )


@hookimpl
def register_models(register):
    register("hsv-transformer", "artforge_hsv.model:HSVTransformer")  # lazy: torch loads on use


@hookimpl
def register_commands(cli):
    from artforge_hsv.commands import complete

    cli.add_command(complete)
