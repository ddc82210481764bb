"""`artforge data build | info | verify | preview` and `artforge datasets`."""

from __future__ import annotations

import json

import click

from artforge.cli.display import echo_json, json_stdout
from artforge.cli.params import INPUT, OUTPUT, SCALE_HELP, complete_codecs, complete_data
from artforge.errors import ArtforgeError, BadInput, ContractError, shown


@click.group()
def data() -> None:
    """Build and inspect HDF5 token caches (what models train on)."""


def default_codec(source: str) -> str | None:
    """The codec a built-in data set names, if SOURCE is builtin:NAME."""
    if source.startswith("builtin:"):
        from artforge.codecs import get_codec
        from artforge.plugins import PluginError, lookup

        entry = lookup("datasets", source.removeprefix("builtin:"))
        spec = entry.meta.get("codec")
        if spec:
            try:  # the plugin chose this spec, not the user: say so if it does not work
                get_codec(spec)
            except PluginError:
                raise
            except ArtforgeError as exc:
                raise PluginError(f"plugin {entry.plugin!r} gives data set {entry.name!r} the default codec "
                                  f"{spec!r}: {str(exc).split(';')[0]}; choose one with --codec") from None
        return spec
    return None


@data.command()
@click.argument("source", shell_complete=complete_data)
@click.option("-c", "--codec", "spec", shell_complete=complete_codecs,
              help="Codec spec (built-in data sets have a default).")
@click.option("-o", "--output", required=True, type=OUTPUT, help="Cache file to write (.h5).")
@click.option("--size", type=click.IntRange(1, 4096), help="Fit every image into SIZE x SIZE.")
@click.option("--resample", type=click.Choice(["lanczos", "box", "bilinear", "nearest"]), default="lanczos",
              show_default=True)
@click.option("--labels", help="Labels: a .json or .csv file, 'dirs' (parent folder) or 'npz:KEY'.")
@click.option("-j", "--workers", type=click.IntRange(1, 256), help="Encoding processes [default: cores].")
@click.option("--force", is_flag=True, help="Rebuild even when the cache is up to date.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def build(source: str, spec: str | None, output: str, size: int | None, resample: str, labels: str | None,
          workers: int | None, force: bool, quiet: bool) -> None:
    """Encode SOURCE (folder, glob, .npz, .jsonl or builtin:NAME) into an HDF5 cache.

    Re-running with the same source, codec and options does nothing; bad items are skipped and
    counted. The cache is written to a temporary file and renamed, so it is never half-written.
    """
    from artforge.data.cache import build_cache

    spec = spec or default_codec(source)
    if not spec:
        raise ArtforgeError("--codec is required (only builtin: data sets have a default)")
    r = build_cache(source, spec, output, size=size, resample=resample, labels=labels, workers=workers,
                    force=force, progress=not quiet)
    if r.status == "up-to-date":
        click.echo(f"{shown(r.path)} is up to date ({r.n_items} items; {r.reason}); nothing to do")
        return
    for name, reason in r.skipped[:20]:
        click.echo(f"skipped {shown(name)}: {reason}", err=True)
    if len(r.skipped) > 20:
        click.echo(f"... and {len(r.skipped) - 20} more (see `artforge data info`)", err=True)
    rate = r.n_items / r.seconds if r.seconds else 0
    click.echo(f"built {shown(r.path)}: {r.n_items} items, skipped {len(r.skipped)}, {r.seconds:.1f}s "
               f"({rate:.0f} items/s; {r.reason})")


@data.command()
@click.argument("cache", type=INPUT)
@click.option("--val-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Split shown: training's train.val_fraction.")
@click.option("--test-fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Split shown: training's train.test_fraction.")
@click.option("--json", "as_json", is_flag=True)
@json_stdout
def info(cache: str, val_fraction: float, test_fraction: float, as_json: bool) -> None:
    """Counts, codec, shapes, sizes, compression, labels and skipped items of a cache, and how
    training would split it (by name: see --val-fraction and --test-fraction)."""
    from artforge.data.cache import cache_info, cache_names
    from artforge.data.splits import leaves_no_training, split_index_sets

    for opt, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if value != value:  # nan passes click's FloatRange (every comparison with it is false)
            raise ArtforgeError(f"{opt} must be a number in [0, 1], got {value}")
    if leaves_no_training(val_fraction, test_fraction):
        raise ArtforgeError(f"--val-fraction + --test-fraction must be below 1 (the rest trains), got "
                            f"{val_fraction} + {test_fraction}")
    i = cache_info(cache)
    sets = split_index_sets(cache_names(cache), val_fraction, test_fraction)
    i["splits"] = {"val_fraction": val_fraction, "test_fraction": test_fraction,
                   **{k: len(sets[k]) for k in ("train", "val", "test")}}
    if as_json:
        echo_json(json.dumps(i, indent=2))
        return
    from artforge.cli.display import print_table

    rows = [
        ("items", f"{i['items']} (read {i['read']}, skipped {i['skipped']})"),
        ("codec", f"{i['codec_spec']} (vocab {i['vocab_size']})"),
        ("tokens", f"{' x '.join(map(str, i['token_shape']))} {i['dtype']}, chunks {i['chunks']}, "
                   f"{i['compression']}"),
        ("size on disk", f"{i['file_bytes']:,} bytes (tokens {i['token_bytes_stored']:,} stored, "
                         f"{i['token_bytes_raw']:,} raw: ratio {i['compression_ratio']})"),
        ("source", f"{i['source']}" + (f" fitted to {i['size']}x{i['size']}" if i["size"] else "")),
        ("made", f"{i['created']} by artforge {i['artforge_version']} (schema {i['schema']})"),
        ("split", _split_row(i["splits"])),
    ]
    if i["labels"]:
        freq = ", ".join(f"{c} {f:.0%}" for c, f in list(i["labels"]["frequency"].items())[:30])
        rows.append(("labels", f"{len(i['labels']['columns'])} from {i['labels']['source']}: {freq}"))
        if i["labels_without_image"]:
            rows.append(("", f"{i['labels_without_image']} labels name no image"))
    for name, reason in i["skipped_items"][:50]:
        rows.append(("skipped", f"{shown(name)}: {reason}"))
    print_table(("", ""), rows, styles={0: "bold"}, show_header=False, box=None)


def _split_row(sp: dict) -> str:
    if sp["test_fraction"] > 0:
        return (f"{sp['train']} train / {sp['val']} val / {sp['test']} test (val_fraction {sp['val_fraction']}, "
                f"test {sp['test_fraction']})")
    return f"{sp['train']} train / {sp['val']} val (val_fraction {sp['val_fraction']})"


@data.command()
@click.argument("cache", type=INPUT)
def verify(cache: str) -> None:
    """Read every chunk and check the cache's invariants; non-zero exit on any problem."""
    from artforge.data.cache import verify_cache

    problems = verify_cache(cache)
    if problems:
        for p in problems:
            click.echo(f"{shown(cache)}: {p}", err=True)
        raise ArtforgeError(f"{cache}: {len(problems)} problem(s) found")
    click.echo(f"{shown(cache)}: ok")


@data.command("preview")
@click.argument("cache", type=INPUT)
@click.option("-n", "count", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("-o", "--output", required=True, type=OUTPUT,
              help="Grid picture to write (.png, .jpg, .webp ...: the suffix names the format).")
@click.option("--seed", type=int, default=0, show_default=True, help="Which samples (random, seeded).")
@click.option("--scale", type=click.IntRange(1, 64), help=SCALE_HELP)
def preview_cmd(cache: str, count: int, output: str, seed: int, scale: int | None) -> None:
    """Decode N samples of a cache into one grid picture."""
    import numpy as np

    from artforge.codecs import check_item_shape, codec_from_config, decode_checked
    from artforge.data.cache import open_cache
    from artforge.fsutil import check_not_input
    from artforge.grid import save_grid
    from artforge.imageio import check_picture_output
    from artforge.plugins import PluginError

    check_picture_output(output)
    check_not_input(output, [cache])
    with open_cache(cache) as f:
        n = f["tokens"].shape[0]
        rows = np.sort(np.random.default_rng(seed).choice(n, min(count, n), replace=False))
        try:
            tokens = f["tokens"][rows]
        except OSError as exc:
            raise BadInput(cache, f"cannot read items ({exc}); check it with `artforge data verify`") from None
        try:
            codec = codec_from_config(json.loads(f.attrs["codec"]))
        except PluginError:
            raise
        except ArtforgeError as exc:
            raise BadInput(cache, str(exc)) from None
    # tokens that do not fit the cache's own codec are the file's fault, named as such (as `decode` does
    # for a token file); a crash on tokens that passed the check stays the codec's (ContractError)
    try:
        check_item_shape(codec, tokens, "tokens")
        images = decode_checked(codec, codec.check_tokens(tokens, "tokens"))
    except ContractError:
        raise
    except ArtforgeError as exc:
        raise BadInput(cache, f"{str(exc).removeprefix('tokens: ')}; check it with `artforge data verify`") from None
    save_grid(images, output, scale=scale)
    click.echo(f"{len(rows)} samples of {shown(cache)} -> {shown(output)}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@json_stdout
def datasets(as_json: bool) -> None:
    """List built-in data sets (use them as builtin:NAME)."""
    from artforge.plugins import registry

    reg = registry("datasets")
    rows = [{"name": f"builtin:{n}", "codec": reg.get(n).meta.get("codec"), "plugin": reg.get(n).plugin,
             "description": reg.get(n).meta.get("description", ""), "path": str(reg.get(n).obj)}
            for n in reg.names()]
    if as_json:
        echo_json(json.dumps(rows, indent=2))
        return
    from artforge.cli.display import print_table

    print_table(("data set", "default codec", "plugin", "description"),
                [(r["name"], r["codec"] or "", r["plugin"], r["description"]) for r in rows])


def register(cli: click.Group) -> None:
    cli.add_command(data)
    cli.add_command(datasets)
