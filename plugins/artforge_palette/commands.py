"""`artforge palette extract | show`: make palettes from data and look at them."""

from __future__ import annotations

import click

from artforge.cli.params import OUTPUT, complete_data
from artforge.errors import ArtforgeError, shown


@click.group()
def palette() -> None:
    """Palettes for the palette codec: extract one from images, show one."""


@palette.command()
@click.argument("source", shell_complete=complete_data)
@click.option("-n", "--colors", "n", type=click.IntRange(1, 65536), default=16, show_default=True,
              help="Colours to keep (transparency is extra).")
@click.option("-o", "--output", required=True, type=OUTPUT, help="Palette file: .gpl, .json, .hex or .png.")
@click.option("--size", type=click.IntRange(1, 4096), help="Fit images into SIZE x SIZE first.")
@click.option("--swatch", type=OUTPUT, help="Also write a swatch picture (.png, .jpg ...) of the palette.")
def extract(source: str, n: int, output: str, size: int | None, swatch: str | None) -> None:
    """Learn an N-colour palette from SOURCE (image, folder, glob, .npz or builtin:NAME).

    Exact colours when SOURCE has at most N; otherwise N colours by weighted k-means in CIELAB.
    """
    from pathlib import Path

    from artforge.data.sources import open_source
    from artforge.errors import BadInput
    from artforge.fsutil import check_not_input, check_not_inputs, check_output
    from artforge_palette.codec import PaletteCodec
    from artforge_palette.palettes import SUFFIXES, write_palette

    out = check_output(output)
    if swatch is not None and Path(swatch).resolve() == out.resolve():  # one would replace the other
        raise BadInput(swatch, "is also the -o file; give --swatch another name")
    check_not_input(out, [source])
    check_not_input(swatch, [source])
    if out.suffix.lower() not in SUFFIXES:
        raise ArtforgeError(f"{out}: palette files end in {', '.join(SUFFIXES)}")
    if swatch is not None:  # a picture: its suffix names its format, checked before the work
        from artforge.imageio import check_picture_output

        check_picture_output(swatch)
    codec = PaletteCodec.from_spec(f"auto/{n}")
    src = open_source(source, codec)
    check_not_inputs([out, swatch], src.paths())  # a picture inside a SOURCE folder or glob
    if src.kind != "image":
        raise BadInput(source, f"holds {src.kind} items; a palette is learned from pictures")
    if not src.refs():
        raise BadInput(source, "no pictures found")
    skipped, used = [], []

    def images():
        for ref in src.refs():
            try:
                yield codec.prepare(src.payload(ref, codec), size)[None]
                used.append(ref.name)
            except (BadInput, ValueError) as exc:
                skipped.append(ref.name)
                click.echo(f"skipped {exc}", err=True)

    try:
        codec.fit(images())
    except ArtforgeError:  # prepared pictures are RGBA: the one complaint left is "nothing visible"
        if not used:
            raise BadInput(source, f"no usable images ({len(skipped)} skipped)") from None
        which = f"all {len(used)} usable pictures are" if len(used) > 1 else "the picture is"
        raise BadInput(source, f"no visible pixels to learn a palette from ({which} fully transparent)") from None
    colors = codec.palette[1:]
    write_palette(colors, out, name=Path(source).stem or "artforge")
    if swatch:
        from artforge.imageio import save_picture

        save_picture(swatch_image(colors), check_output(swatch))
    click.echo(f"{codec.fit_summary()} -> {shown(out)}" + (f"; skipped {len(skipped)}" if skipped else ""))


@palette.command()
@click.argument("spec")
@click.option("-o", "--output", type=OUTPUT, help="Write a swatch picture (.png, .jpg ...).")
def show(spec: str, output: str | None) -> None:
    """List the colours of a palette spec (pico8, nes, FILE.gpl ...; the 'palette:' prefix is optional)."""
    from artforge.codecs import get_codec
    from artforge_palette.palettes import to_hex

    codec = get_codec(spec if spec.startswith("palette") else f"palette:{spec}")
    if codec.name != "palette":
        raise ArtforgeError(f"{spec} is not a palette spec")
    colors = codec.palette[1:]
    if output:  # checked before anything is printed
        from artforge.fsutil import check_not_input
        from artforge.imageio import check_picture_output

        check_picture_output(output)
        check_not_input(output, [spec.removeprefix("palette:")])
    click.echo(f"{codec.spec}: {len(colors)} colours + transparent (vocab {codec.vocab_size})")
    click.echo(" ".join(to_hex(colors)))
    if output:
        from artforge.imageio import save_picture

        save_picture(swatch_image(colors), output)
        click.echo(f"swatch -> {shown(output)}")


def swatch_image(colors, cell: int = 16, per_row: int = 16):
    """Colours as a grid of squares (translucent ones over a checkerboard)."""
    import numpy as np

    n = len(colors)
    cols = min(per_row, n)
    rows = (n + cols - 1) // cols
    img = np.full((rows * cell, cols * cell, 3), 255, np.uint8)
    yy, xx = np.mgrid[0:cell, 0:cell]
    checker = np.where(((yy // 4 + xx // 4) % 2)[..., None] == 0, 204, 255).astype(np.float64)
    for i, (r, g, b, a) in enumerate(np.asarray(colors, np.float64)):
        y, x = divmod(i, cols)
        block = checker * (1 - a / 255) + np.array([r, g, b]) * (a / 255)
        img[y * cell : (y + 1) * cell, x * cell : (x + 1) * cell] = np.round(block).astype(np.uint8)
    return img
