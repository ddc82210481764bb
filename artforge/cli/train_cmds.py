"""`artforge models | train | sample | eval | export`."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path

import click

from artforge.cli.display import echo_json, json_stdout
from artforge.cli.params import (
    INPUT,
    OUTPUT,
    check_sampling,
    check_seed,
    complete_codecs,
    complete_data,
    complete_models,
)
from artforge.errors import ArtforgeError, BadInput, distributed_env, shown


def _echo(msg: str) -> None:
    if distributed_env()[1] == 0:
        click.echo(msg)


def _model_row(name: str, entry, with_help: bool = True) -> dict:
    """What `artforge models` says of one model; ``with_help`` reads each field's help from the
    Config's source (the listing table does not show it)."""
    from artforge.models import config_fields, field_help, type_label

    cls = entry.obj
    helps = field_help(cls.Config) if with_help else {}
    fields = {k: {"type": type_label(t), "default": d, "help": helps.get(k, "")}
              for k, (t, d) in config_fields(cls.Config).items()}
    return {"name": name, "plugin": entry.plugin, "description": cls.description,
            "codecs": list(cls.codecs), "needs_labels": cls.needs_labels, "presets": cls.presets,
            "config": fields, "train_defaults": cls.train_defaults, "usage": cls.usage}


def _show(value) -> str:
    """A config value as --set takes it (tuples without their brackets' spaces)."""
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return str(value)


def _describe_model(row: dict) -> None:
    """One model in full: what each config field does, its default and each preset's value."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{row['name']}[/bold] (plugin {row['plugin']}): {row['description']}", highlight=False)
    facts = [f"codecs: {', '.join(row['codecs']) or 'any'}",
             "labels: needed (--labels when building the cache)" if row["needs_labels"] else "labels: not used"]
    if row["train_defaults"]:
        facts.append("training defaults: " + ", ".join(f"{k}={v}" for k, v in row["train_defaults"].items()))
    console.print("; ".join(facts), highlight=False)
    if row["usage"]:
        console.print(f"does not sample: {row['usage']}", highlight=False)
    table = Table("field", "type", "default", "what it does")
    for key, f in row["config"].items():
        table.add_row(key, f["type"], _show(f["default"]), f["help"])
    console.print(table)
    for preset, values in row["presets"].items():
        shown = " ".join(f"{k}={_show(v)}" for k, v in values.items()) or "(the defaults)"
        console.print(f"preset {preset}: {shown}", highlight=False)
    tip = "set a field with --set KEY=VALUE"
    if row["presets"]:
        tip += "; --set preset=NAME starts from a preset, and other --set values go on top of it"
    console.print(tip, highlight=False)


@click.command()
@click.argument("name", required=False, shell_complete=complete_models)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@json_stdout
def models(name: str | None, as_json: bool) -> None:
    """List models: codecs they take, config fields with defaults, presets.

    With NAME, one model in full: what each config field does (what --set takes), its type, its
    default and each preset's value, and the training defaults.
    """
    from artforge.plugins import lookup, registry

    if name is not None:
        row = _model_row(name, lookup("models", name))
        if as_json:
            echo_json(json.dumps(row, indent=2, default=str))
        else:
            _describe_model(row)
        return
    rows = [_model_row(n, entry, with_help=as_json) for n, entry in registry("models").loaded()]
    if as_json:
        echo_json(json.dumps(rows, indent=2, default=str))
        return
    from artforge.cli.display import print_table

    print_table(("model", "codecs", "description", "config (defaults)", "presets"),
                [(r["name"], ", ".join(r["codecs"]), r["description"],
                  ", ".join(f"{k}={v['default']}" for k, v in r["config"].items()), ", ".join(r["presets"]))
                 for r in rows])
    click.echo("artforge models NAME: what each field does, and each preset's values")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[-60:] or "data"


def resolve_data(data: str, codec: str | None, size: int | None, labels: str | None, cache_root: Path,
                 quiet: bool) -> tuple[str, str | None]:
    """A cache path for --data: the cache itself, or one built (or reused) from a source."""
    from artforge.cli.data_cmds import default_codec
    from artforge.data.cache import build_cache

    p = Path(data)
    if p.is_file() and p.suffix in (".h5", ".hdf5"):
        if codec or size or labels:
            _echo(f"note: {data} is a cache; --codec/--size/--labels only apply when building one")
        return str(p), None
    spec = codec or default_codec(data)
    if not spec:
        raise ArtforgeError(f"{data} is not a cache (.h5); give --codec to build one from it")
    if distributed_env()[0] > 1:
        raise ArtforgeError("under torchrun, pass --data CACHE.h5 built first with `artforge data build`")
    cache_root.mkdir(parents=True, exist_ok=True)
    out = cache_root / f"{_slug(data)}-{_slug(spec)}{f'-{size}' if size else ''}.h5"
    r = build_cache(data, spec, out, size=size, labels=labels, progress=not quiet)
    _echo(f"cache {shown(out)}: {r.n_items} items ({'reused' if r.status == 'up-to-date' else 'built'}"
          f"{f', skipped {len(r.skipped)}' if r.skipped else ''})")
    return str(out), data


def _check_source_codec(model_cls, data: str, codec: str | None) -> None:
    """Before a cache is built from a source: refuse a codec the model cannot take (building first
    would cost the whole build)."""
    from artforge.cli.data_cmds import default_codec
    from artforge.codecs import get_codec
    from artforge.models import check_codec

    p = Path(data)
    spec = None if p.is_file() and p.suffix in (".h5", ".hdf5") else codec or default_codec(data)
    if spec:
        try:
            check_codec(model_cls, {"codec": get_codec(spec).name, "spec": spec})
        except ArtforgeError as exc:
            if codec:
                raise
            raise ArtforgeError(f"{exc} ({spec} is the default codec of {data}; choose one with --codec)") from None


def _split_sets(model_cls, pairs: tuple[str, ...]) -> tuple[dict, dict]:
    """--set pairs -> (model overrides, train overrides); ``train.KEY`` forces the latter."""
    import dataclasses

    from artforge.engine.trainer import TrainConfig
    from artforge.models import _parse, config_fields, parse_sets

    model_keys = set(config_fields(model_cls.Config)) | {"preset"}
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    import typing

    hints = typing.get_type_hints(TrainConfig)
    model_over, train_over = {}, {}
    for k, v in parse_sets(pairs).items():
        if k.startswith("train."):
            k = k[6:]
            if k not in train_fields:
                raise ArtforgeError(f"unknown training option {k!r}; options: {', '.join(train_fields)}")
            train_over[k] = _parse(v, hints[k], k)
        elif k in model_keys:
            model_over[k] = v
        elif k in train_fields:
            train_over[k] = _parse(v, hints[k], k)
        else:
            raise ArtforgeError(
                f"unknown config key {k!r} for model {model_cls.name!r}; keys: {', '.join(sorted(model_keys))} "
                f"(training: {', '.join(train_fields)})"
            )
    return model_over, train_over


@click.command()
@click.option("-p", "--plugin", "--model", "model_name", shell_complete=complete_models,
              help="Model to train (see `artforge models`).")
@click.option("-d", "--data", shell_complete=complete_data,
              help="A cache (.h5) or a source (folder, glob, .npz, builtin:NAME).")
@click.option("-c", "--codec", shell_complete=complete_codecs, help="Codec for building a cache from a source.")
@click.option("--size", type=click.IntRange(1, 4096), help="Fit images to SIZE x SIZE when building a cache.")
@click.option("--labels", help="Labels when building a cache (.json, .csv, dirs, npz:KEY).")
@click.option("--steps", type=click.IntRange(1), help="Optimizer steps [default: 1 epoch].")
@click.option("--epochs", type=float, help="Epochs instead of --steps.")
@click.option("-b", "--batch-size", type=click.IntRange(1), help="Global batch size.")
@click.option("--lr", type=float, help="Peak learning rate (warm-up, then cosine).")
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Model config field (or training option, e.g. weight_decay=0.1, train.ema=0.999).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]),
              help="Autocast: auto = bf16 on CUDA, fp32 on CPU; bf16 also speeds up CPUs with AVX-512 BF16.")
@click.option("--seed", type=int, callback=check_seed, help="Random seed [default: 0].")
@click.option("-o", "--out", type=OUTPUT, help="Run folder [default: runs/MODEL-N].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--init", "init_from", metavar="RUN",
              help="Start from another run's weights (its best.pt, or a checkpoint file) with a fresh optimiser "
                   "and schedule; the model and its config come from that run, --set may change the rest.")
@click.option("--sample-every", type=click.IntRange(1), help="Steps between sample grids.")
@click.option("--eval-every", type=click.IntRange(1), help="Steps between validations (and checkpoints).")
@click.option("--max-time", type=float,
              help="Stop (and save) once the run has trained this many seconds in all (a resumed run "
                   "counts its earlier time too).")
@click.option("-j", "--workers", type=click.IntRange(0), help="DataLoader worker processes [default: 0].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train(model_name, data, codec, size, labels, steps, epochs, batch_size, lr, sets, device, compile_, precision,
          seed, out, resume, init_from, sample_every, eval_every, max_time, workers, quiet) -> None:
    """Train a model on a token cache (or a source, cached automatically).

    The run folder gets config.json, last.pt and best.pt checkpoints, metrics.jsonl, samples/
    grids (models that sample) and loss.png. Ctrl-C saves and exits; --resume continues exactly
    where it stopped. A run that fails before it has written anything but config.json leaves no
    folder behind, so the same --out can be used again.
    """
    from artforge.engine.run import CONFIG, LAST, next_run_dir, resume_run_config
    from artforge.engine.trainer import (
        NonFinite,
        TrainConfig,
        Trainer,
        model_summary,
        new_run_config,
        train_config_from,
        write_run_config,
    )
    from artforge.models import DataInfo, check_codec, get_model_class, make_config

    world, rank, _ = distributed_env()  # all three checked before anything is read or written
    main = rank == 0
    options = {"steps": steps, "batch_size": batch_size, "lr": lr, "device": device, "compile": compile_ or None,
               "precision": precision, "seed": seed, "sample_every": sample_every, "eval_every": eval_every,
               "max_time": max_time, "num_workers": workers}
    if epochs is not None:
        options["epochs"] = epochs
    init = None
    made_folder = restored = False
    if resume:
        if init_from:
            raise ArtforgeError("--resume continues a run with its own weights; drop --init")
        if not out:
            raise ArtforgeError("--resume needs --out RUN_FOLDER")
        if data or codec or labels or size or sets:
            raise ArtforgeError("--resume continues on the run's own cache and settings; drop --data/--codec/"
                                "--labels/--size/--set")
        run_dir = Path(out)
        run_config, restored = resume_run_config(run_dir)
        cfg_values = dict(run_config["train"])
        # Settings the run's weights, data order and log depend on are the run's own: one given with
        # another value would otherwise be dropped without a word (a resumed run trains as it began).
        fixed = {"batch_size": "--batch-size", "lr": "--lr", "seed": "--seed", "eval_every": "--eval-every",
                 "sample_every": "--sample-every"}
        changed = [f"{flag} {options[k]} (the run's is {cfg_values.get(k)})" for k, flag in fixed.items()
                   if options.get(k) is not None and options[k] != cfg_values.get(k)]
        if changed:
            raise ArtforgeError(f"--resume continues with the run's own settings; drop {', '.join(changed)}, "
                                f"or start a new run from its weights with --init {run_dir}")
        for k in ("steps", "device", "max_time", "num_workers", "precision", "compile"):
            if options.get(k) is not None:
                cfg_values[k] = options[k]
        if epochs is not None:  # with --steps too: it would go unread
            raise ArtforgeError("--resume extends a run with --steps, not --epochs")
        try:
            cfg = TrainConfig(**cfg_values)
        except (ArtforgeError, TypeError) as exc:
            raise BadInput(run_dir / CONFIG, f"its train settings: {exc}") from None
        if model_name and model_name != run_config["model"]:
            raise ArtforgeError(f"{run_dir} is a {run_config['model']!r} run, not {model_name!r}")
        _check_cache_fits(run_config["data"]["cache"], run_config["data"], f"the run in {run_dir}")
    else:
        if init_from:
            init = _init_weights(init_from, model_name)
            model_name = init.config["model"]
        if not model_name or not data:
            raise ArtforgeError("train needs --plugin MODEL and --data CACHE|SOURCE (or --resume --out RUN)")
        cls = get_model_class(model_name)
        model_over, train_over = _split_sets(cls, sets)
        run_dir = Path(out) if out else next_run_dir("runs", cls.name)
        if run_dir.exists() and not run_dir.is_dir():
            raise ArtforgeError(f"{run_dir}: is a file, expected a run folder (--out)")
        _refuse_existing_run(run_dir)
        _check_source_codec(cls, data, codec)
        # settings are checked before the cache is built: a bad --lr should not wait for minutes of encoding
        length = {**options, **train_over}
        if length.get("steps") is not None and length.get("epochs") is not None:  # steps won, epochs went unread
            raise ArtforgeError(f"--steps {length['steps']} and --epochs {length['epochs']:g} both give the run's "
                                "length; pass one of them")
        cfg = train_config_from(cls, length)
        if init is None:
            model_config, preset = make_config(cls, model_over)
        cache, source = resolve_data(data, codec, size, labels, run_dir.parent / ".cache", quiet)
        from artforge.data.cache import cache_info

        ci = cache_info(cache)
        check_codec(cls, ci["codec"])
        label_columns = ci["labels"]["columns"] if ci["labels"] else []
        if cls.needs_labels and not label_columns:
            raise ArtforgeError(f"model {cls.name!r} is conditional and needs labels; build the cache with "
                                "--labels (a .json/.csv file, dirs or npz:KEY)")
        if init is not None:
            model_config, preset = init.model_config(cls, model_over, ci["codec"])
        info = DataInfo(ci["codec"], ci["vocab_size"], tuple(ci["token_shape"]), label_columns)
        run_config = new_run_config(cls, model_config, preset, info, cache, source, cfg)
        if init is not None:
            # absolute, as data.cache is: the --init chain is followed back from wherever eval runs
            run_config["init"] = os.path.abspath(init.path)
        if main:
            from artforge.fsutil import output_folder

            made_folder = not run_dir.exists()
            output_folder(run_dir, parents=True)
    import dataclasses
    from contextlib import nullcontext

    from artforge.fsutil import run_lock

    # one training process per run folder: a second one (a --resume while it runs) would write the
    # same last.pt and metrics.jsonl, each cutting the other's log back to its own checkpoint
    with run_lock(run_dir) if main else nullcontext():
        if main and not resume:  # again under the lock: another process may have begun it since
            _refuse_existing_run(run_dir)
        try:  # a start that fails (bad batch split, out of memory at step 1) leaves nothing to block --out
            trainer = Trainer(run_dir, run_config, cfg, resume=resume, quiet=quiet,
                              init_weights=init.weights if init is not None else None)
            run_config["train"] = dataclasses.asdict(trainer.cfg)  # with the resolved steps and intervals
            if main:
                write_run_config(run_dir, run_config)
                if restored:
                    _echo(f"note: {shown(run_dir / CONFIG)} was missing; restored it from the run config "
                          f"{LAST} carries")
            _echo(f"training {run_config['model']} ({model_summary(trainer.model)}) on "
                  f"{shown(run_config['data']['cache'])} "
                  f"({len(trainer.train_ds)} train / {len(trainer.val_ds)} val{_held_out(trainer)}) "
                  f"on {trainer.device} for {trainer.total} steps -> {shown(run_dir)}")
            if not resume and trainer.cfg.test_fraction > 0 and run_config.get("init"):  # else nothing to check
                held = trainer.train_ds
                note = _test_leak_note(run_config, [held.names_all[i] for i in held.split_sets["test"]])
                if note:
                    _echo(f"note: {note}")
            try:
                result = trainer.fit()
            except NonFinite as exc:
                raise ArtforgeError(str(exc)) from None
        except BaseException:
            if main and not resume:
                _drop_failed_start(run_dir, remove_folder=made_folder)
            raise
    if result["stop"] == "interrupted":
        _echo(f"interrupted at step {result['step']}; saved {shown(run_dir / LAST)}. "
              f"Continue with: artforge train --resume --out {run_dir}")
        sys.exit(128 + result["signal"])  # 130 after Ctrl-C, 143 after SIGTERM, as a shell reports them
    val = result["val"]
    figures = ", ".join(f"{k} {v:.4g}" for k, v in val.items()) if val else "n/a"
    _echo(f"{'stopped (max time)' if result['stop'] == 'max_time' else 'done'} at step {result['step']} "
          f"in {result['seconds']:.0f}s; validation: {figures}")
    held = [n for n in ("config.json", "best.pt", "last.pt", "metrics.jsonl", "samples", "loss.png")
            if (run_dir / n).exists()]  # a model that cannot sample leaves no samples/
    _echo(f"run folder {shown(run_dir)}: " + ", ".join(n + "/" if (run_dir / n).is_dir() else n for n in held))
    if world > 1:
        import torch

        torch.distributed.destroy_process_group()


def _refuse_existing_run(run_dir: Path) -> None:
    """A new run may not start in a folder that holds one (its config.json or last.pt)."""
    from artforge.engine.run import CONFIG, LAST

    if (run_dir / CONFIG).exists() or (run_dir / LAST).exists():
        raise ArtforgeError(f"{run_dir} already holds a run; pass --resume to continue it, or another --out")


def _test_leak_note(run_config: dict, test_names: list[str]) -> str | None:
    """A note when a run this one was started from (--init) trained on some of its test items, whose
    figures then lean optimistic; or when that could not be checked."""
    from artforge.engine.run import trained_by_ancestors

    if not test_names or not run_config.get("init"):
        return None
    seen, unchecked = trained_by_ancestors(run_config, test_names)
    if seen:
        return (f"{len(seen)} of the {len(test_names)} test items were trained on by a run this one was started "
                f"from (--init {run_config['init']}): test figures lean optimistic")
    if unchecked:
        return (f"could not check whether {unchecked[0]} (--init) trained on the test items: its config.json "
                "or cache is gone")
    return None


def _unseen_cache(cache: str, config: dict) -> bool:
    """Whether ``cache`` is another data set than the run's: no item name in common with the run's
    cache nor any that a run it was started from trained on. False when that cannot be told."""
    from artforge.data.cache import cache_names
    from artforge.engine.run import trained_by_ancestors

    own = config["data"]["cache"]
    try:
        if Path(cache).resolve() == Path(own).resolve():
            return False
        names, own_names = cache_names(cache), set(cache_names(own))
    except (ArtforgeError, OSError):  # the run's own cache is gone: keep the split rule
        return False
    if own_names.intersection(names):
        return False
    seen, unchecked = trained_by_ancestors(config, names)
    return not seen and not unchecked


def _held_out(trainer) -> str:
    """' / N test, held out' when the run keeps a test split (it never reads it)."""
    n = trainer.train_ds.split_sizes["test"]
    return f" / {n} test, held out" if trainer.cfg.test_fraction > 0 else ""


def _drop_failed_start(run_dir: Path, remove_folder: bool) -> None:
    """Undo a new run that wrote nothing but its config.json (and empty files or folders)."""
    from artforge.engine.run import CONFIG
    from artforge.fsutil import TRAIN_LOCK

    try:
        rest = [p for p in run_dir.iterdir() if p.name not in (CONFIG, TRAIN_LOCK)]
        if any(p.is_file() and p.stat().st_size or p.is_dir() and any(p.iterdir()) for p in rest):
            return  # the run got far enough to log, sample or save: keep all of it
        for p in rest:
            p.rmdir() if p.is_dir() else p.unlink()
        (run_dir / CONFIG).unlink(missing_ok=True)
        (run_dir / TRAIN_LOCK).unlink(missing_ok=True)  # held by this process: it closes it on the way out
        if remove_folder:
            run_dir.rmdir()
    except OSError:
        pass


class _Init:
    """The weights and config of the run that ``--init`` names."""

    def __init__(self, path: Path, config: dict, weights: dict):
        self.path, self.config, self.weights = path, config, weights

    def model_config(self, cls, overrides: dict, codec: dict):
        """The init run's model config with ``--set`` overrides; the cache must use the same codec."""
        import dataclasses

        from artforge.models import config_from_json, make_config

        if "preset" in overrides:
            raise ArtforgeError(f"--init takes the model config of {self.path}; drop --set preset=...")
        if codec != self.config["data"]["codec"]:
            theirs, ours = self.config["data"]["codec"].get("spec"), codec.get("spec")
            same = " (the same spec, fitted to other data)" if theirs == ours else ""
            raise ArtforgeError(f"{self.path} was trained on codec {theirs!r} and the cache has {ours!r}{same}: "
                                "the tokens would mean different things; train on a cache built with the same codec")
        base = dataclasses.asdict(config_from_json(cls, self.config["model_config"]))
        config, _ = make_config(cls, {**base, **overrides})
        return config, self.config.get("preset")


def _init_weights(run: str, model_name: str | None) -> _Init:
    from artforge.engine.run import load_run

    loaded = load_run(run, "best", expect_model=model_name)  # builds the model: every check `sample` makes
    return _Init(loaded.checkpoint, loaded.config, loaded.model.state_dict())


def _check_cache_fits(cache: str, data: dict, who: str) -> None:
    """The cache must hold what the run was trained on: codec, grid and vocabulary, and for a
    conditional run the same label columns (an unconditional run ignores labels)."""
    from artforge.data.cache import cache_info

    ci = cache_info(cache)
    have = {"codec": ci["codec"], "vocab_size": ci["vocab_size"], "token_shape": list(ci["token_shape"]),
            "label_columns": ci["labels"]["columns"] if ci["labels"] else []}
    for key, value in have.items():
        want = data.get(key)
        if key == "label_columns" and not want:
            continue
        if value != want:
            if key == "codec":
                value, want = value.get("spec"), want.get("spec") if isinstance(want, dict) else want
            elif key == "label_columns":
                value, want = ", ".join(value) or "none", ", ".join(want)
            raise BadInput(cache, f"its {key.replace('_', ' ')} ({value}) differs from {who}'s ({want}); "
                                  "use the run's cache or rebuild it the same way")


def parse_labels(pairs: tuple[str, ...], columns: list[str]):
    """--label name=value pairs -> a label vector over the run's columns (None without pairs)."""
    import numpy as np

    if not pairs:
        return None
    if not columns:
        raise ArtforgeError("this model was trained without labels; drop --label")
    vec = np.zeros(len(columns), np.float32)
    # A numeric label takes one value (the last would silently win). Text columns ("type=female") may
    # be multi-hot lists (accessories), which the cache does not tell apart from one-hot ones.
    given: dict[str, str] = {}
    for pair in pairs:
        name = pair if pair in columns else pair.split("=", 1)[0]
        if name in given:
            raise ArtforgeError(f"--label {given[name]!r} and --label {pair!r}: {name} takes one value")
        given[name] = pair
        if pair in columns:  # "type=female" or a bare numeric column name
            vec[columns.index(pair)] = 1.0
            continue
        if "=" not in pair:
            raise ArtforgeError(f"--label {pair!r}: expected name=value")
        k, v = pair.split("=", 1)
        if k in columns:
            try:
                x = float(v)
            except ValueError:
                raise ArtforgeError(f"--label {pair!r}: {k} takes a number") from None
            if not abs(x) <= float(np.finfo(np.float32).max):  # also nan
                raise ArtforgeError(f"--label {pair!r}: {k} takes a finite number")
            vec[columns.index(k)] = x
        else:
            raise ArtforgeError(f"--label {pair!r} matches no label; labels: {', '.join(columns)}")
    return vec


@click.command()
@click.argument("run", required=False, type=INPUT)
@click.option("-n", "count", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("-o", "--output", required=True, type=OUTPUT,
              help="Grid picture to write (.png, .jpg, .webp ...: the suffix names the format).")
@click.option("--seed", type=int, callback=check_seed, default=0, show_default=True)
@click.option("-t", "--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-k", type=click.IntRange(1), help="Sample among the k likeliest tokens.")
@click.option("--top-p", type=float, help="Nucleus sampling: the smallest set with this much probability.")
@click.option("--label", "label_pairs", multiple=True, metavar="NAME=VALUE", help="Condition on a label.")
@click.option("--tokens", type=OUTPUT, help="Also write the token file (for decode).")
@click.option("--checkpoint", "which", default="best", show_default=True, help="best, last, or a file name.")
@click.option("--onnx", "onnx_dir", type=INPUT, help="Sample from an ONNX export with onnxruntime.")
@click.option("--interpolate", nargs=2, type=INPUT, help="Interpolate between two inputs in n steps.")
@click.option("--device", default="auto", show_default=True)
def sample(run, count, output, seed, temperature, top_k, top_p, label_pairs, tokens, which, onnx_dir, interpolate,
           device) -> None:
    """Sample new pieces from a trained run (or an ONNX export) into a picture grid."""
    from artforge.codecs import check_encoded, checked_tokens, codec_from_config, decode_checked
    from artforge.fsutil import check_not_inputs
    from artforge.grid import save_grid
    from artforge.imageio import check_picture_output
    from artforge.tokenfile import save_tokens

    if Path(output).suffix.lower() == ".txt":  # text models write their .txt beside the picture
        raise BadInput(output, "the sample grid is a picture; name it .png (text art goes beside it as .txt)")
    check_picture_output(output)  # its folder too
    check_not_inputs((output, tokens, Path(output).with_suffix(".txt")), interpolate or ())
    t0 = time.perf_counter()
    check_sampling(temperature, top_p)
    # only the options given: a sampler without top-k has no such parameter to take None
    options = {k: v for k, v in (("top_k", top_k), ("top_p", top_p)) if v is not None}
    if onnx_dir:
        from artforge.onnx_runtime import load_manifest, sample_onnx
        from artforge.plugins import PluginError

        if run:
            raise ArtforgeError("give a RUN or --onnx DIR, not both")
        if interpolate:
            raise ArtforgeError("--interpolate needs a RUN (the ONNX export has no encoder path for it); drop --onnx")
        manifest, folder = load_manifest(onnx_dir)
        vec = parse_labels(label_pairs, manifest.get("label_columns", []))
        try:
            codec = codec_from_config(manifest["codec"])
        except PluginError:
            raise
        except ArtforgeError as exc:
            raise BadInput(folder / "manifest.json", str(exc)) from None
        toks, _ = sample_onnx(onnx_dir, count, seed=seed, temperature=temperature, labels=vec, **options)
        shape = manifest.get("token_shape")
        toks = checked_tokens(toks, codec, f"ONNX sampler {manifest.get('sampler')}", count,
                              tuple(shape) if isinstance(shape, list) else None)
        toks = toks.astype(codec.token_dtype, copy=False)  # onnxruntime gives int64; a run's samples the codec's
        names = [f"onnx-{i:04d}" for i in range(len(toks))]
    else:
        if not run:
            raise ArtforgeError("name a RUN folder or checkpoint (or --onnx DIR)")
        import torch

        from artforge.engine.run import load_run
        from artforge.engine.trainer import pick_device
        from artforge.models import check_call, check_model_tokens

        dev = pick_device(device)
        loaded = load_run(run, which=which, device=str(dev))
        check_not_inputs((output, tokens, Path(output).with_suffix(".txt")), loaded.files())
        codec, model = loaded.codec, loaded.model
        vec = parse_labels(label_pairs, model.info.label_columns)
        labels = torch.from_numpy(vec).to(dev)[None].expand(count, -1) if vec is not None else None
        g = torch.Generator(dev).manual_seed(seed)
        if interpolate:
            side = _side(model, codec)
            a, b = (torch.from_numpy(check_encoded(codec, codec.encode(codec.stack([codec.read(p, size=side)])), 1)
                                     .astype("int64")).to(dev) for p in interpolate)
            check_call(model, "interpolate", a, b, count, labels=None)
            out = model.interpolate(a, b, count, labels=labels[:1] if labels is not None else None)
            toks = check_model_tokens(model, "interpolate", out, codec)
            names = [f"interp-{i:03d}" for i in range(len(toks))]
        else:
            kwargs = {"generator": g, "temperature": temperature, "labels": labels, **options}
            check_call(model, "sample", count, flags={"top_k": "--top-k", "top_p": "--top-p"}, **kwargs)
            toks = check_model_tokens(model, "sample", model.sample(count, **kwargs), codec, count)
            names = [f"sample-{i:04d}" for i in range(len(toks))]
    seconds = time.perf_counter() - t0  # model loading and generation, not the PNG
    save_grid(decode_checked(codec, toks), output)
    msg = f"{len(toks)} {'interpolated' if interpolate else 'samples'} in {seconds:.2f} s -> {shown(output)}"
    if tokens:
        p = save_tokens(tokens, toks, names, codec.config())
        msg += f" (tokens: {p})"
    if codec.input_kind == "text" and hasattr(codec, "write_texts"):  # text art: the .txt beside the picture
        txt = Path(output).with_suffix(".txt")
        codec.write_texts(toks, txt)
        msg += f" (text: {txt})"
    click.echo(msg)


def _side(model, codec) -> int | None:
    """Image inputs are fitted to the model's square image size; text inputs are not resized."""
    shape = model.info.token_shape
    return shape[0] if codec.input_kind == "image" and len(shape) == 2 and shape[0] == shape[1] else None


def _check_refinable(run: str, model) -> None:
    if not model.refinable:
        raise BadInput(run, f"is a {model.name} run; --refine is for models with a point code to polish "
                            "(palette-ae, palette-conv-ae)")


def _json_safe(value):
    """NaN and infinities as null: JSON has no spelling for them (a diverged model's figures)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@click.command("eval")
@click.argument("run", type=INPUT)
@click.option("--data", "cache", type=INPUT, help="Another cache to evaluate on [default: the run's].")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]),
              help="Items to evaluate on [default: test when the run keeps a test split (train.test_fraction), "
                   "else val; all of a --data cache that shares no item with the run's].")
@click.option("--checkpoint", "which", default="best", show_default=True)
@click.option("-b", "--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--refine", type=click.IntRange(0, 100000), default=0, show_default=True, metavar="STEPS",
              help="Autoencoders: polish each image's code by STEPS gradient steps before decoding.")
@click.option("--json", "as_json", is_flag=True)
@json_stdout
def eval_cmd(run, cache, split, which, batch_size, device, refine, as_json) -> None:
    """The model's own figures on held-out data, written to eval.json in the run folder.

    The val split chose best.pt, so its figures lean optimistic; a run trained with --set
    train.test_fraction=0.1 keeps a test split that chose nothing, and eval uses it by default.
    The split used is printed and recorded in eval.json.

    With --refine the code of each image is not just the encoder's output but that output
    improved by STEPS Adam steps on the reconstruction loss, the decoder fixed (semi-amortised
    inference): the code keeps its size, the figures show what the decoder can do."""

    import torch

    from artforge.engine.run import load_run
    from artforge.engine.trainer import pick_device
    from artforge.fsutil import atomic_write_text
    from artforge.models import check_call, check_figures

    dev = pick_device(device)
    loaded = load_run(run, which=which, device=str(dev))
    if refine:
        _check_refinable(run, loaded.model)
    cache = cache or loaded.config["data"]["cache"]
    val_fraction, test_fraction = loaded.fractions()
    if split == "test" and not test_fraction > 0:
        raise ArtforgeError(f"{run}: the run kept no test split (its train.test_fraction is 0); evaluate "
                            "--split val, or keep one in a new run with --set train.test_fraction=0.1")
    _check_cache_fits(cache, loaded.config["data"], "the run")
    note = None
    if split is None and _unseen_cache(cache, loaded.config):
        split = "all"  # another data set the run never saw: all of it is held out
        note = f"no item of {cache} is in the run's cache or an --init run's (by name): all of it is evaluated"
    elif split is None:
        split = "test" if test_fraction > 0 else "val"
    ds = loaded.dataset(split, cache)
    if len(ds) == 0:
        at = {"val": f" at the run's train.val_fraction {val_fraction}",
              "test": f" at the run's train.test_fraction {test_fraction}; evaluate --split val"}.get(split, "")
        raise BadInput(cache, f"has no {split} samples{at}")

    def batches():
        for i in range(0, len(ds), batch_size):
            b = ds.__getitems__(list(range(i, min(i + batch_size, len(ds)))))
            yield {k: v.to(dev) for k, v in b.items()}

    t0 = time.perf_counter()
    extra = {"refine": refine} if refine else {}
    check_call(loaded.model, "evaluate", batches(), loaded.codec, **extra)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        figures = check_figures(loaded.model, "evaluate", loaded.model.evaluate(batches(), loaded.codec, **extra))
    result = {"run": str(run), "checkpoint": str(loaded.checkpoint), "step": loaded.step, "model": loaded.model.name,
              "cache": str(cache), "split": split, "samples": len(ds), "device": str(dev),
              "seconds": round(time.perf_counter() - t0, 2), "figures": figures}
    if split == "test":
        note = _test_leak_note(loaded.config, [ds.names_all[i] for i in ds.indices])
    if note:
        result["note"] = note
    target = loaded.output_path("eval.json", f"{loaded.checkpoint.stem}.eval.json")
    atomic_write_text(target, json.dumps(_json_safe(result), indent=2) + "\n")
    if as_json:
        echo_json(json.dumps(_json_safe(result), indent=2))
        return
    counted = f"all {len(ds)}" if split == "all" else f"{len(ds)} {split}"  # `which` is the checkpoint
    click.echo(f"{loaded.model.name} step {loaded.step} on {counted} samples of {shown(cache)}:")
    if note:
        click.echo(f"  note: {note}")
    for k, v in figures.items():
        click.echo(f"  {k:28s} {v:.5g}" if isinstance(v, float) else f"  {k:28s} {v}")
    click.echo(f"written to {shown(target)}")


@click.command()
@click.argument("run", type=INPUT)
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=OUTPUT, help="Grid picture: each image, then its reconstruction.")
@click.option("--refine", type=click.IntRange(0, 100000), default=0, show_default=True, metavar="STEPS",
              help="Autoencoders: polish each image's code by STEPS gradient steps before decoding.")
@click.option("--label", "label_pairs", multiple=True, metavar="NAME=VALUE", help="Labels (conditional models).")
@click.option("--tokens", type=OUTPUT, help="Also write the reconstructions' token file.")
@click.option("--checkpoint", "which", default="best", show_default=True)
@click.option("--device", default="auto", show_default=True)
def reconstruct(run, images, output, refine, label_pairs, tokens, which, device) -> None:
    """Round-trip IMAGES through a trained autoencoder: pairs in a grid, pixel accuracy.

    Each image is first put through the run's codec, as in training, then encoded and decoded; the
    command prints the share of pixels that came back right and how many images came back exactly.
    IMAGES are files, folders or globs; images of another size are fitted to the model's. With
    --refine each code is polished as in `artforge eval --refine` and keeps its size."""
    import numpy as np
    import torch

    from artforge.cli.codec_cmds import expand_inputs, no_usable_inputs, read_inputs
    from artforge.codecs import check_encoded, decode_checked
    from artforge.engine.run import load_run
    from artforge.engine.trainer import pick_device
    from artforge.fsutil import check_not_inputs
    from artforge.grid import save_grid
    from artforge.imageio import check_picture_output
    from artforge.models import check_call, check_model_tokens
    from artforge.tokenfile import save_tokens

    check_picture_output(output)
    inputs = [p for p, _ in expand_inputs(images, None)]
    check_not_inputs((output, tokens), inputs)
    t0 = time.perf_counter()
    dev = pick_device(device)
    loaded = load_run(run, which=which, device=str(dev))
    check_not_inputs((output, tokens), loaded.files())
    model, codec = loaded.model, loaded.codec
    if refine:
        _check_refinable(run, model)
    items, names, skipped = read_inputs(codec, images, _side(model, codec), "lanczos")
    if not items:
        raise no_usable_inputs(images, len(skipped))
    encoded = check_encoded(codec, codec.encode(codec.stack(items)), len(items))
    x = torch.from_numpy(encoded.astype(np.int64)).to(dev)
    if tuple(x.shape[1:]) != tuple(model.info.token_shape):
        raise ArtforgeError(f"the images encode to {tuple(x.shape[1:])} tokens; the model takes "
                            f"{tuple(model.info.token_shape)}")
    vec = parse_labels(label_pairs, model.info.label_columns)
    labels = torch.from_numpy(vec).to(dev)[None].expand(len(x), -1) if vec is not None else None
    extra = {"refine": refine} if refine else {}
    check_call(model, "reconstruct", x, labels, **extra)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        toks = check_model_tokens(model, "reconstruct", model.reconstruct(x, labels, **extra), codec, len(x))
    seconds = time.perf_counter() - t0
    hit = (torch.from_numpy(toks.astype(np.int64)) == x.cpu()).flatten(1)
    pairs = np.stack([decode_checked(codec, encoded), decode_checked(codec, toks)], 1)
    save_grid(pairs.reshape(-1, *pairs.shape[2:]), output, ncols=2 * min(8, len(x)))
    msg = (f"{len(x)} images{f' ({len(skipped)} skipped)' if skipped else ''}: pixel accuracy "
           f"{float(hit.float().mean()):.2%}, {int(hit.all(1).sum())} exact"
           f"{f', codes refined by {refine} steps' if refine else ''}, {seconds:.2f} s -> {shown(output)}")
    if tokens:
        msg += f" (tokens: {save_tokens(tokens, toks, names, codec.config())})"
    click.echo(msg)


@click.command()
@click.argument("run", type=INPUT)
@click.option("--onnx", "onnx", is_flag=True, help="Export to ONNX (the one format so far).")
@click.option("-o", "--output", type=OUTPUT, help="Folder for the .onnx files [default: RUN/onnx].")
@click.option("--checkpoint", "which", default="best", show_default=True)
def export(run, onnx, output, which) -> None:
    """Export a run's inference modules, checked with onnx.checker and onnxruntime."""
    if not onnx:
        raise ArtforgeError("choose a format: --onnx")
    from artforge.engine.export import export_run

    m = export_run(run, output, which=which, echo=click.echo)
    folder = Path(output) if output else None
    click.echo(f"exported {len(m['modules'])} module(s) of {m['model']} (step {m['step']}) with manifest.json"
               + (f" to {folder}" if folder else ""))


def register(cli: click.Group) -> None:
    for cmd in (models, train, sample, reconstruct, eval_cmd, export):
        cli.add_command(cmd)
