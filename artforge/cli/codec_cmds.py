"""`artforge encode | decode | preview`: codecs from the command line."""

from __future__ import annotations

import re
from pathlib import Path

import click

from artforge.cli.params import INPUT, OUTPUT, SCALE_HELP, complete_codecs
from artforge.errors import ArtforgeError, BadInput, ContractError, first_line, shown

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


def no_usable_inputs(inputs: tuple[str, ...] | list[str], skipped: int, codec=None) -> ArtforgeError:
    """The error for a batch command left with nothing: which inputs, and whether files were
    skipped (each already reported) or none were found at all. ``codec`` names what was wanted
    when it reads something other than images (text, .saml)."""
    named = " ".join(str(i) for i in list(inputs)[:3]) + (" ..." if len(inputs) > 3 else "")
    kind = "image"
    if codec is not None and codec.input_kind != "image":
        kind = "/".join(sorted(codec.input_suffixes or ())) or codec.input_kind
    why = f"{skipped} skipped" if skipped else f"no {kind} files found"
    return ArtforgeError(f"{named}: no usable {kind} files ({why})" if kind != "image"
                         else f"{named}: no usable images ({why})")


def read_inputs(codec, inputs: tuple[str, ...], size: int | None, resample: str):
    """Read every input, skipping (and reporting) bad ones. Returns items, names, skipped."""
    items, names, skipped = [], [], []
    codec.check_read_options(size, resample)  # once, not as a skip of every input
    for path, name in expand_inputs(inputs, codec.input_suffixes):
        try:
            items.append(codec.read(path, size=size, resample=resample))
            names.append(name)
        except BadInput as exc:
            skipped.append(str(exc))
            click.echo(f"skipped {exc}", err=True)
    return items, names, skipped


def stack_named(codec, items: list, names: list[str]):
    """``codec.stack`` whose size complaint names a file of each size, not only the sizes."""
    try:
        return codec.stack(items)
    except ArtforgeError as exc:
        shapes = [getattr(x, "shape", None) for x in items]
        if None in shapes or len(set(shapes)) < 2:
            raise
        first: dict[tuple, str] = {}
        for shape, name in zip(shapes, names, strict=True):
            first.setdefault(tuple(shape), name)
        listed = ", ".join(f"{n} {s[1]}x{s[0]}" for s, n in list(first.items())[:4])
        more = f" and {len(first) - 4} more sizes" if len(first) > 4 else ""
        raise ArtforgeError(f"inputs have different sizes ({listed}{more}); pass --size N to fit them") from exc


def _made_by(codec, spec: str) -> bool:
    """Whether a token file's codec is the one ``spec`` names: the same config, or for a spec that is
    fitted to data (palette:auto/N, whose stored config holds the palette it learned) the same spec."""
    from artforge.codecs import get_codec

    wanted = get_codec(spec)
    return wanted.spec == codec.spec if wanted.needs_fit else wanted.config() == codec.config()


def _unique(stems: list[str]) -> list[str]:
    """The stems with repeats numbered (x, x-2, x-3), so no output replaces another."""
    used: set[str] = set()
    out = []
    for stem in stems:
        base, k = stem, 2
        while stem in used:
            stem, k = f"{base}-{k}", k + 1
        used.add(stem)
        out.append(stem)
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "item"


@click.command()
@click.option("-c", "--codec", "spec", shell_complete=complete_codecs, required=True,
              help="Codec spec, e.g. hsv544 (see `artforge codecs`).")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=OUTPUT, help="Token file to write (.npz).")
@click.option("--size", type=click.IntRange(1, 4096), help="Fit every image into SIZE x SIZE first.")
@click.option("--resample", type=RESAMPLE, default="lanczos", show_default=True, help="Resize filter.")
def encode(spec: str, inputs: tuple[str, ...], output: str, size: int | None, resample: str) -> None:
    """Encode images (files or folders, searched recursively) into one token file.

    The token file holds every input's tokens, its name, and the codec config, so
    `artforge decode` needs no flags.
    """
    from artforge.codecs import check_encoded, get_codec
    from artforge.fsutil import check_output
    from artforge.tokenfile import save_tokens, token_path

    codec = get_codec(spec)
    out = check_output(token_path(output))
    items, names, skipped = read_inputs(codec, inputs, size, resample)
    if not items:
        raise no_usable_inputs(inputs, len(skipped), codec)
    batch = stack_named(codec, items, names)
    if codec.needs_fit:
        codec.fit([batch])
    tokens = check_encoded(codec, codec.encode(batch), len(names))
    save_tokens(out, tokens, names, codec.config())
    shape = "x".join(str(s) for s in tokens.shape[1:])
    msg = f"encoded {len(names)} with {codec.spec} -> {shown(out)} ({shape} tokens each, vocab {codec.vocab_size})"
    if skipped:
        msg += f"; skipped {len(skipped)}"
    click.echo(msg)


@click.command()
@click.argument("tokens", type=INPUT)
@click.option("-o", "--output", required=True, type=OUTPUT,
              help="A picture (one image, or a grid of many; .png, .jpg, .webp ...: the suffix names the format) "
                   "or a folder (one PNG per item).")
@click.option("--codec", "expect", help="Fail unless the tokens were made by this codec spec.")
@click.option("--scale", type=click.IntRange(1, 64), help=SCALE_HELP)
def decode(tokens: str, output: str, expect: str | None, scale: int | None) -> None:
    """Decode a token file back to pictures; the file names its codec.

    One item -> OUTPUT.png; many items with OUTPUT.png -> a grid (OUTPUT.jpg, .webp ...: that
    format); OUTPUT a folder (or a name ending in /, made if missing) -> one PNG each.
    """
    from artforge.codecs import decode_checked
    from artforge.fsutil import output_folder
    from artforge.grid import save_grid
    from artforge.imageio import check_picture_output, save_picture
    from artforge.tokenfile import load_token_codec

    if Path(output).exists() and Path(output).resolve() == Path(tokens).resolve():
        raise BadInput(output, "is the token file being decoded; write the pictures elsewhere")
    to_folder = Path(output).is_dir() or output.endswith(("/", "\\"))
    if not to_folder:  # a picture: its suffix names its format; another suffix is refused before any work
        check_picture_output(output)
    tf, codec = load_token_codec(tokens)
    if expect is not None and not _made_by(codec, expect):
        raise BadInput(tokens, f"tokens were made by codec {codec.spec}, not {expect}")
    # the file passed the codec's checks (load_token_codec): a decode that crashes or returns no
    # pictures is the codec's fault (ContractError); only the codec's own verdict blames the file
    try:
        images = decode_checked(codec, tf.tokens)
    except ContractError:
        raise
    except ArtforgeError as exc:
        raise BadInput(tokens, str(exc).removeprefix(f"{tokens}: ")) from None
    out = Path(output)
    if to_folder:
        output_folder(out)
        stems = _unique([_safe_name(re.sub(r"\.[A-Za-z0-9]+$", "", name)) for name in tf.names])
        for img, stem in zip(images, stems, strict=True):
            save_picture(img, out / (stem + ".png"))
        click.echo(f"decoded {len(images)} with {codec.spec} -> {shown(out)}/")
    elif len(images) == 1 and scale is None:
        save_picture(images[0], out)
        click.echo(f"decoded 1 with {codec.spec} -> {shown(out)}")
    else:
        save_grid(images, out, scale=scale)
        click.echo(f"decoded {len(images)} with {codec.spec} -> {shown(out)} (grid)")


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-c", "--codec", "specs", shell_complete=complete_codecs, multiple=True, required=True,
              help="Codec spec; repeat to compare.")
@click.option("-o", "--output", required=True, type=OUTPUT,
              help="Picture to write (.png, .jpg, .webp ...: the suffix names the format).")
@click.option("--size", type=click.IntRange(1, 4096), help="Fit every image into SIZE x SIZE first.")
@click.option("--resample", type=RESAMPLE, default="lanczos", show_default=True)
@click.option("--scale", type=click.IntRange(1, 64), help=SCALE_HELP)
def preview(inputs: tuple[str, ...], specs: tuple[str, ...], output: str, size: int | None,
            resample: str, scale: int | None) -> None:
    """Side by side: each image, then its round trip through each codec (one row per image)."""
    import numpy as np

    from artforge.codecs import check_encoded, decode_checked, get_codec
    from artforge.fsutil import check_not_input
    from artforge.grid import save_grid
    from artforge.imageio import check_picture_output

    check_picture_output(output)
    check_not_input(output, [p for p, _ in expand_inputs(inputs, None)])
    codecs = [get_codec(s) for s in specs]
    if any(c.input_kind != "image" for c in codecs):
        raise ArtforgeError("preview compares image codecs only")
    items, names, skipped = read_inputs(codecs[0], inputs, size, resample)
    if not items:
        raise no_usable_inputs(inputs, len(skipped))
    batch = stack_named(codecs[0], items, names)
    columns = [batch]
    for c in codecs:
        if c.needs_fit:
            c.fit([batch])
        columns.append(decode_checked(c, check_encoded(c, c.encode(batch), len(batch))))
    cells = np.stack(columns, 1).reshape(-1, *batch.shape[1:])
    save_grid(cells, output, ncols=len(columns), scale=scale)
    click.echo(f"{len(names)} images x (original, {', '.join(c.spec for c in codecs)}) -> {shown(output)}")


@click.command()
@click.argument("input_path", metavar="INPUT", type=INPUT)
@click.option("-o", "--output", required=True, type=OUTPUT,
              help="Picture to write (a grid for many items; the suffix names the format).")
@click.option("-c", "--codec", "spec", shell_complete=complete_codecs,
              help="Codec of INPUT when it is not a token file (e.g. ascii:80x40); for a token file, fail "
                   "unless its tokens were made by this codec.")
@click.option("--scale", type=click.IntRange(1, 64), help=SCALE_HELP)
def render(input_path: str, output: str, spec: str | None, scale: int | None) -> None:
    """Render a token file (or a codec's own file, e.g. .txt) through the codec's torch renderer."""
    import io
    import zipfile

    from artforge.codecs import check_encoded, get_codec
    from artforge.fsutil import check_not_input, check_readable, is_pipe, read_pipe
    from artforge.grid import save_grid
    from artforge.imageio import check_picture_output, save_picture
    from artforge.plugins import registry
    from artforge.renderers import get_renderer, render_tokens
    from artforge.tokenfile import load_token_codec

    check_picture_output(output)
    check_not_input(output, [input_path])
    path = Path(input_path)
    if not path.exists():
        raise BadInput(path, "no such file")
    check_readable(path)  # is_zipfile says False for it, and the suffix would pick the wrong reader
    data = read_pipe(path) if is_pipe(path) else None  # <(cat t.npz): read once, looked at twice
    # a token file names its codec; with --codec it was read as a picture ("not an image"). Only an .npz is
    # taken for one then: a codec's own format may be a zip too (a pipe has no suffix: a zip is tokens)
    if zipfile.is_zipfile(io.BytesIO(data) if data is not None else path) and (
            spec is None or data is not None or path.suffix.lower() == ".npz"):
        tf, codec = load_token_codec(path, data)
        if spec is not None and not _made_by(codec, spec):
            raise BadInput(path, f"tokens were made by codec {codec.spec}, not {spec}")
        tokens = tf.tokens
    else:
        if spec is None:
            reg = registry("codecs")
            fams = [n for n, e in reg.loaded() if path.suffix.lower() in e.obj.native_suffixes]
            if not fams:
                raise BadInput(path, "not a token file; name its codec with --codec")
            spec = fams[0]
        codec = get_codec(spec)
        tokens = check_encoded(codec, codec.encode(codec.stack([_read_once(codec, path, data)])), 1)
    # the tokens passed the codec's checks: a renderer that fails or returns no pictures is blamed as
    # such (ContractError); only the renderer's own ArtforgeError is a verdict on the file
    renderer = get_renderer(codec)
    try:
        img = render_tokens(codec, tokens, renderer)
    except ContractError:
        raise
    except ArtforgeError as exc:
        raise BadInput(path, str(exc).removeprefix(f"{path}: ")) from None
    if len(img) == 1 and scale is None:
        save_picture(img[0], output)
    else:
        save_grid(img, output, scale=scale)
    click.echo(f"rendered {len(img)} with the {codec.name} renderer -> {shown(output)}")


def _read_once(codec, path: Path, data: bytes | None):
    """``codec.read(path)``, or for a pipe already read (``data``) the same from a private copy of its
    bytes, the problems still naming ``path``."""
    import tempfile

    if data is None:
        return codec.read(path)
    with tempfile.TemporaryDirectory(prefix="artforge-") as folder:
        copy = Path(folder) / "input"
        copy.write_bytes(data)
        try:
            return codec.read(copy)
        except BadInput as exc:
            raise BadInput(path, exc.reason.replace(str(copy), str(path))) from None


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-c", "--codec", "spec", shell_complete=complete_codecs, required=True,
              help="Target codec, e.g. palette:pico8 or ascii:80x40.")
@click.option("-o", "--output", required=True, type=OUTPUT,
              help="Output: a picture (.png, .jpg, .webp ...: decoded, in the format the suffix names), .npz (tokens) "
                   "or the codec's own format (e.g. .txt).")
@click.option("--png", "png", type=OUTPUT, help="Also write the decoded picture here.")
@click.option("--size", type=click.IntRange(1, 4096), help="Fit the picture into SIZE x SIZE first.")
@click.option("--resample", type=RESAMPLE, default="lanczos", show_default=True)
@click.option("--dither", type=click.Choice(["none", "bayer", "floyd"]), help="Dithering (palette codecs).")
@click.option("--edges", type=float, help="Edge emphasis 0..1 (ascii codecs).")
@click.option("--skip-existing", is_flag=True,
              help="Leave outputs that already exist (each is written whole), e.g. to finish an interrupted folder.")
def convert(inputs, spec, output, png, size, resample, dither, edges, skip_existing) -> None:
    """Turn any picture into the codec's art form (palette pixel art, ASCII art, ...).

    With several inputs, OUTPUT is a folder (made if missing) that receives one file per input,
    named by its stem; inputs that share a stem are named by their relative path (x.jpg.png).
    """
    from artforge.codecs import check_encoded, decode_checked, get_codec
    from artforge.fsutil import check_not_inputs, check_output, output_folder
    from artforge.imageio import check_picture_output, save_picture
    from artforge.tokenfile import save_tokens

    codec = get_codec(spec)
    options = {k: v for k, v in (("dither", dither), ("edges", edges)) if v is not None}
    files = expand_inputs(inputs, None)
    out = Path(output)
    many = len(files) > 1
    if png and many:
        raise ArtforgeError("--png takes one input; with many, use -o FOLDER")
    if png and Path(png).resolve() == out.resolve():
        raise BadInput(png, "is also the -o file; give --png another name")
    targets = _convert_targets(out, [name for _, name in files], codec) if many else [out] * len(files)
    if targets:
        _check_format(codec, targets[0])
    if png:
        check_picture_output(png)
    check_not_inputs([*targets, png, out], [p for p, _ in files])
    if many:
        output_folder(out)  # with many inputs -o names a folder: made if missing
    done, skipped, kept = 0, 0, 0
    for (path, name), target in zip(files, targets, strict=True):
        if skip_existing and target.is_file() and (not png or Path(png).is_file()):
            kept += 1
            continue
        try:
            img = _load_picture(path)
            img = fit_square(img, size, resample) if size else img
        except BadInput as exc:
            click.echo(f"skipped {exc}", err=True)
            skipped += 1
            continue
        try:  # a picture the codec cannot take (nothing visible to fit a palette to) is skipped too
            if codec.needs_fit:
                codec.fit([img[None]])
        except ArtforgeError as exc:
            click.echo(f"skipped {shown(path)}: {first_line(exc)}", err=True)
            skipped += 1
            continue
        try:
            tokens = codec.convert(img[None], **options)
        except ArtforgeError as exc:
            if options and _converts(codec, img):  # the options are at fault (--edges for a palette): the
                raise  # same for every input, so one error line, not a skip per input
            click.echo(f"skipped {shown(path)}: {first_line(exc)}", err=True)
            skipped += 1
            continue
        tokens = check_encoded(codec, tokens, 1, "convert")  # outside the skip: a codec bug stops the batch
        note = codec.convert_report()
        if note:
            click.echo(f"{shown(name)}: {note}")
        check_output(target)
        if target.suffix.lower() == ".npz":
            save_tokens(target, tokens, [name], codec.config())
        elif _writes_picture(codec, target):
            save_picture(decode_checked(codec, tokens)[0], target)  # in the format its suffix names
        else:
            codec.write_native(tokens[0], target)
        if png:
            save_picture(decode_checked(codec, tokens)[0], check_output(png))
        done += 1
    if not done and not kept:
        raise no_usable_inputs(inputs, skipped)
    click.echo(f"converted {done} with {codec.spec} -> {shown(out)}" + (f"; kept {kept} existing" if kept else "")
               + (f"; skipped {skipped}" if skipped else ""))


def _writes_picture(codec, target: Path) -> bool:
    """Whether ``convert`` writes the decoded picture to ``target``: a picture suffix (.png, .jpg, .webp ...)
    that is not the codec's own format."""
    from artforge.imageio import PICTURE_FORMATS

    suffix = target.suffix.lower()
    return suffix in PICTURE_FORMATS and suffix not in codec.native_suffixes


def _check_format(codec, target: Path) -> None:
    """Refuse an output suffix that ``convert`` would not write as its format, before any work: a picture
    suffix (.png, .jpg, .webp ...) is the decoded picture in that format, .npz the tokens, the codec's own
    suffix its own format; a name without a suffix takes the codec's own format."""
    from artforge.imageio import note_picture

    suffix = target.suffix.lower()
    if _writes_picture(codec, target):
        note_picture(target)
        return
    if suffix == ".npz" or suffix in codec.native_suffixes or (not suffix and codec.native_suffixes):
        return
    if not codec.native_suffixes:
        raise ArtforgeError(f"{target}: codec {codec.spec} has no file format of its own; write a picture "
                            "(.png, .jpg, .webp ...) or .npz")
    own = ", ".join(sorted(codec.native_suffixes))
    raise ArtforgeError(f"{target}: codec {codec.spec} writes {own} files of its own, not {target.suffix}; "
                        f"write a picture (.png, .jpg, .webp ...), .npz or {own}")


def _converts(codec, img) -> bool:
    """Whether the codec converts ``img`` without any options (after it failed with them)."""
    try:
        codec.convert(img[None])
    except ArtforgeError:
        return False
    return True


def _convert_targets(out: Path, names: list[str], codec) -> list[Path]:
    """One file per input in folder ``out``, named by the input's stem. Inputs that share a stem
    (a/x.png and b/x.png; x.jpg and x.png) are all named by their relative path instead (a_x,
    b_x; x.jpg, x.png), without the suffix where that is enough: a name never depends on which
    input came first, so ``--skip-existing`` cannot take one input's output for another's."""
    from collections import Counter

    suffix = out.suffix or _default_suffix(codec)
    stems = [Path(n).stem for n in names]
    paths = [_safe_name(Path(n).with_suffix("").as_posix()) for n in names]
    repeated, repeated_paths = Counter(stems), Counter(paths)
    chosen = [stem if repeated[stem] == 1 else path if repeated_paths[path] == 1 else _safe_name(name)
              for stem, path, name in zip(stems, paths, names, strict=True)]
    return [out / (stem + suffix) for stem in _unique(chosen)]


def _load_picture(path):
    from artforge.imageio import load_image

    return load_image(path)


def fit_square(img, size, resample):
    from artforge.imageio import fit_square as fit

    return fit(img, size, resample)


def _default_suffix(codec) -> str:
    return sorted(codec.native_suffixes)[0] if codec.native_suffixes else ".png"


def register(cli: click.Group) -> None:
    for cmd in (encode, decode, preview, render, convert):
        cli.add_command(cmd)
