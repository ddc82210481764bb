"""Regenerate docs/cli.md from the click commands: python docs/gen_cli.py (a test checks it is current)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

HEADER = """# Command-line reference

Generated from the commands themselves by `python docs/gen_cli.py`; `tests/test_docs.py` fails when
this page is out of date. Every command takes `-h/--help`. Bad input exits non-zero with one line
(`Error: FILE: problem`); set `ARTFORGE_DEBUG=1` (or `true`, `yes`, `on`; `0`, `false`, `no`, `off`
or empty leave it off, anything else too, with a warning) to see a traceback for an internal error.
Exit status: 0 done (a batch that skipped bad items says how many, and still exits 0), 1 an error,
2 a usage error (an unknown option, a value out of range), 130 after Ctrl-C (`Aborted!`), 143 after
SIGTERM (`Terminated (SIGTERM).`), as a shell reports a signal (128 + its number), so a script can
tell a stop from a failure; a stopped command leaves no partial file and its previous output whole.
An input may come through a pipe (`artforge encode -c hsv544 <(curl -s URL) -o t.npz`,
`cat t.npz | artforge decode /dev/stdin -o x.png`): it is read once, whole, up to 1 GiB (the largest
picture artforge opens, uncompressed; more is refused: save it to a file); a codec fitted to the
data (`palette:auto`) cannot `data build` from one, as it reads its source twice.

A picture written by any command (`-o`, `--png`, `--swatch`) is in the format its name's suffix
says: `.png`, `.webp` (lossless), `.tif`/`.tiff`, `.tga`, `.gif` (at most 256 colours and on/off
transparency), `.bmp`, `.ppm`/`.pnm` or `.jpg`/`.jpeg` (lossy); the last three have no
transparency, so pictures are laid on white. A format that loses colours or transparency says so in
a note. Any other suffix, or none, is refused in one line before any work (`Error: x.xyz: .xyz is
not a picture format artforge writes; name it .png (or ...)`); a device such as `-o /dev/null`
takes PNG. `-o /dev/stdout` writes to standard output (`artforge decode t.npz -o /dev/stdout >
x.png`, PNG; a token file as `.npz`), and the command's report lines then go to stderr.

Commands that write a grid of pictures (`preview`, `decode` and `render` of several items, `data
preview`, `sample`, `reconstruct`, `complete`) zoom small pictures (nearest neighbour) until the
longer side of a cell is about 96 px: 16 px → 6x, 32 px → 3x, 64 px and larger → 1x, and a 20000x1
strip is not zoomed at all. The zoom is lowered while the grid would pass 16 Mpx. A grid over
89.5 Mpx, at the zoom chosen or the one `--scale` asks for, is refused with one line naming the
output (Pillow's decompression-bomb guard, and so artforge itself, would not open it); ask for
fewer or smaller pictures, or a smaller `--scale`.

Tab completion (commands, options, model names, codec families, `builtin:` data sets): add
`eval "$(_ARTFORGE_COMPLETE=bash_source artforge)"` to `~/.bashrc` (`zsh_source`, `fish_source`).

"""


def render(cmd: click.Command, path: list[str], out: list[str]) -> None:
    ctx = click.Context(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100,
                        help_option_names=["-h", "--help"])
    level = "#" * min(len(path) + 1, 4)
    out.append(f"{level} `{' '.join(path)}`\n")
    out.append("```\n" + cmd.get_help(ctx).replace(ctx.command_path, " ".join(path)) + "\n```\n")
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            render(cmd.get_command(ctx, name), [*path, name], out)


def generate() -> str:
    import os

    os.environ["COLUMNS"] = "100"
    from artforge.cli import cli

    out: list[str] = [HEADER]
    render(cli, ["artforge"], out)
    return "\n".join(out)


if __name__ == "__main__":
    target = Path(__file__).with_name("cli.md")
    target.write_text(generate())
    print(f"wrote {target}", file=sys.stderr)
