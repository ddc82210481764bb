"""Hook implementations of the palette plugin (heavy imports happen inside hooks)."""

from __future__ import annotations

from pathlib import Path

from artforge.hookspecs import hookimpl

DATA = Path(__file__).parent / "data"


@hookimpl
def register_datasets(register):
    register(
        "tiles32",
        DATA / "tiles32.npz",
        description="640 Dungeon Crawl Stone Soup tiles, 32x32 RGBA (CC0)",
        codec="palette:auto/32",
    )
