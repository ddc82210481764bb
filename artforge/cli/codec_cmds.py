"""`artforge encode | decode | preview`: codecs from the command line."""

from __future__ import annotations

import re
from pathlib import Path

import click

from artforge.errors import ArtforgeError, BadInput

RESAMPLE = click.Choice(["lanczos", "box", "bilinear", "nearest"])


def expand_inputs(inputs: tuple[str, ...], suffixes: set[str] | None) -> list[tuple[Path, str]]:
    """(path, name) for every input file; names inside folders are paths relative to the folder."""
    from artforge.imageio import image_files

    out = []
    for item in inputs:
        root = Path(item)
        for f in image_files([item], suffixes):
            out.append((f, f.relative_to(root).as_posix() if root.is_dir() else f.name))
    return out


def read_inputs(codec, inputs: tuple[str, ...], size: int | None, resample: str):
    """Read every input, skipping (and reporting) bad ones. Returns items, names, skipped."""
    items, names, skipped = [], [], []
    for path, name in expand_inputs(inputs, codec.input_suffixes):
        try:
            items.append(codec.read(path, size=size, resample=resample))
            names.append(name)
        except BadInput as exc:
            skipped.append(str(exc))
            click.echo(f"skipped {exc}", err=True)
    return items, names, skipped


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "item"


@click.command()
@click.option("-c", "--codec", "spec", required=True, help="Codec spec, e.g. hsv544 (see `artforge codecs`).")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(), help="Token file to write (.npz).")
@click.option("--size", type=click.IntRange(1, 4096), help="Fit every image into SIZE x SIZE first.")
@click.option("--resample", type=RESAMPLE, default="lanczos", show_default=True, help="Resize filter.")
def encode(spec: str, inputs: tuple[str, ...], output: str, size: int | None, resample: str) -> None:
    """Encode images (files or folders, searched recursively) into one token file.

    The token file holds every input's tokens, its name, and the codec config, so
    `artforge decode` needs no flags.
    """
    from artforge.codecs import get_codec
    from artforge.fsutil import check_output
    from artforge.tokenfile import save_tokens

    codec = get_codec(spec)
    out = Path(output)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    check_output(out)
    items, names, skipped = read_inputs(codec, inputs, size, resample)
    if not items:
        raise ArtforgeError(f"no usable inputs ({len(skipped)} skipped)")
    batch = codec.stack(items)
    if codec.needs_fit:
        codec.fit([batch])
    tokens = codec.encode(batch)
    save_tokens(out, tokens, names, codec.config())
    shape = "x".join(str(s) for s in tokens.shape[1:])
    msg = f"encoded {len(names)} with {codec.spec} -> {out} ({shape} tokens each, vocab {codec.vocab_size})"
    if skipped:
        msg += f"; skipped {len(skipped)}"
    click.echo(msg)


@click.command()
@click.argument("tokens", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="A .png (one image, or a grid of many) or a folder (one PNG per item).")
@click.option("--codec", "expect", help="Fail unless the tokens were made by this codec spec.")
@click.option("--scale", type=click.IntRange(1, 64), help="Grid zoom (default: auto for small images).")
def decode(tokens: str, output: str, expect: str | None, scale: int | None) -> None:
    """Decode a token file back to pictures; the file names its codec.

    One item -> OUTPUT.png; many items with OUTPUT.png -> a grid; OUTPUT a folder -> one PNG each.
    """
    from artforge.codecs import codec_from_config, get_codec
    from artforge.grid import make_grid
    from artforge.imageio import save_png
    from artforge.tokenfile import load_tokens

    tf = load_tokens(tokens)
    codec = codec_from_config(tf.codec)
    if expect is not None and get_codec(expect).config() != codec.config():
        raise BadInput(tokens, f"tokens were made by codec {codec.spec}, not {expect}")
    try:
        images = codec.decode(codec.check_tokens(tf.tokens, tokens))
    except ArtforgeError as exc:
        raise BadInput(tokens, str(exc).removeprefix(f"{tokens}: ")) from None
    out = Path(output)
    if out.is_dir() or output.endswith(("/", "\\")):
        if not out.is_dir():
            raise ArtforgeError(f"{out}: output folder does not exist")
        for img, name in zip(images, tf.names, strict=True):
            save_png(img, out / (_safe_name(Path(name).with_suffix("").as_posix()) + ".png"))
        click.echo(f"decoded {len(images)} with {codec.spec} -> {out}/")
    elif len(images) == 1 and scale is None:
        save_png(images[0], out)
        click.echo(f"decoded 1 with {codec.spec} -> {out}")
    else:
        save_png(make_grid(images, scale=scale), out)
        click.echo(f"decoded {len(images)} with {codec.spec} -> {out} (grid)")


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-c", "--codec", "specs", multiple=True, required=True, help="Codec spec; repeat to compare.")
@click.option("-o", "--output", required=True, type=click.Path(), help="PNG to write.")
@click.option("--size", type=click.IntRange(1, 4096), help="Fit every image into SIZE x SIZE first.")
@click.option("--resample", type=RESAMPLE, default="lanczos", show_default=True)
@click.option("--scale", type=click.IntRange(1, 64), help="Zoom (default: auto for small images).")
def preview(inputs: tuple[str, ...], specs: tuple[str, ...], output: str, size: int | None,
            resample: str, scale: int | None) -> None:
    """Side by side: each image, then its round trip through each codec (one row per image)."""
    import numpy as np

    from artforge.codecs import get_codec
    from artforge.fsutil import check_output
    from artforge.grid import make_grid
    from artforge.imageio import save_png

    check_output(output)
    codecs = [get_codec(s) for s in specs]
    if any(c.input_kind != "image" for c in codecs):
        raise ArtforgeError("preview compares image codecs only")
    items, names, skipped = read_inputs(codecs[0], inputs, size, resample)
    if not items:
        raise ArtforgeError(f"no usable inputs ({len(skipped)} skipped)")
    batch = codecs[0].stack(items)
    columns = [batch]
    for c in codecs:
        if c.needs_fit:
            c.fit([batch])
        columns.append(c.decode(c.encode(batch)))
    cells = np.stack(columns, 1).reshape(-1, *batch.shape[1:])
    save_png(make_grid(cells, ncols=len(columns), scale=scale), output)
    click.echo(f"{len(names)} images x (original, {', '.join(c.spec for c in codecs)}) -> {output}")


def register(cli: click.Group) -> None:
    for cmd in (encode, decode, preview):
        cli.add_command(cmd)
