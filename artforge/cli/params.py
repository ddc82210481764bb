"""Shared click parameter types."""

from __future__ import annotations

import click

from artforge.errors import ArtforgeError


class OutputPath(click.Path):
    """A path to write: an empty name (``-o ""``) is an error, not the current folder. An existing file
    need not be readable (click's check would refuse to replace a mode-000 file, in a usage message)."""

    def __init__(self, **kwargs):
        super().__init__(**{"readable": False, **kwargs})

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("empty path", param, ctx)
        return super().convert(value, param, ctx)


OUTPUT = OutputPath()
#: a file the command reads and reports on itself: an unreadable one is the command's one-line
#: "FILE: permission denied", not click's three-line usage error
INPUT = click.Path(readable=False)

#: help of the ``--scale`` options of commands that write grids (artforge.grid says why)
SCALE_HELP = ("Zoom (default: small pictures grow until their longer side is about 96 px, the grid staying "
              "under 16 Mpx; grids over 89.5 Mpx are refused).")


def check_seed(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """Seeds go to torch.Generator.manual_seed, which takes 0 .. 2**63-1 (no range in the help)."""
    if value is not None and not 0 <= value < 2**63:
        raise click.BadParameter(f"{value} is not between 0 and 2**63-1", ctx, param)
    return value


def check_sampling(temperature: float, top_p: float | None) -> None:
    """The sampling options `sample` and `complete` share: temperature > 0 and finite, top-p in (0, 1]."""
    if not 0 < temperature < float("inf"):  # also catches nan
        raise ArtforgeError(f"--temperature must be > 0 and finite, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ArtforgeError(f"--top-p must be in (0, 1], got {top_p}")


def _names(kind: str, incomplete: str, prefix: str = "") -> list:
    """Registered names of a kind that start with what was typed (lazy entries stay unimported)."""
    from click.shell_completion import CompletionItem

    from artforge.plugins import registry

    try:
        names = registry(kind).names()
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [CompletionItem(prefix + n) for n in names if (prefix + n).startswith(incomplete)]


def complete_models(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    return _names("models", incomplete)


def complete_codecs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Codec families (the spec goes on after the name: hsv544, palette:pico8)."""
    return _names("codecs", incomplete)


def complete_data(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """builtin:NAME data sets, then files and folders."""
    from click.shell_completion import CompletionItem

    return _names("datasets", incomplete, "builtin:") + [CompletionItem(incomplete, type="file")]
