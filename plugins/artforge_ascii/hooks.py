"""Hook implementations of the ASCII plugin (heavy imports happen inside hooks)."""

from __future__ import annotations

from pathlib import Path

from artforge.hookspecs import hookimpl

DATA = Path(__file__).parent / "data"


@hookimpl
def register_codecs(register):
    from artforge_ascii.codec import AsciiCodec

    register(AsciiCodec)


@hookimpl
def register_renderers(register):
    register("ascii", "artforge_ascii.renderer:make_renderer")  # lazy: torch loads on use


@hookimpl
def register_models(register):
    register("ascii-vae", "artforge_ascii.model:AsciiVAE")  # lazy: torch loads on use


@hookimpl
def register_datasets(register):
    register(
        "ascii-art",
        DATA / "ascii-art.jsonl.gz",
        description="2000 cowsay pictures and FIGlet banners, up to 64x64 characters (BSD/Artistic/WTFPL/X11)",
        codec="ascii:64x64",
    )
