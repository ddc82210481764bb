"""`artforge runs`: the training runs in a folder, or one run in full. Reads config.json,
metrics.jsonl and eval.json only, so it never imports torch and is fast on many runs."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import click

from artforge.cli.display import echo_json, json_stdout
from artforge.errors import BadInput, first_line, shown

SKIP = {".cache", "__pycache__", "onnx", "samples"}  # folders of a run or of the runs root, never runs


def find_runs(path: Path, depth: int = 2, unread: list[Path] | None = None) -> list[Path]:
    """Run folders (those holding config.json, or a checkpoint whose config.json is gone) at PATH or up
    to ``depth`` levels below it, in name order.
    A folder that may not be read (chmod 000, a root-owned lost+found) is not known to be a run, nor to
    hold any: it is not returned but added to ``unread``, for the listing to name after its rows. A run
    whose config.json may not be read is still a run (its folder shows it), returned to be named as
    unreadable."""
    if not os.access(path, os.R_OK | os.X_OK):
        if unread is not None:
            unread.append(path)
        return []
    if (path / "config.json").is_file():
        return [path]
    # a checkpoint without its config.json: a run to restore, or a best.pt copied beside runs, still searched
    here = [path] if any((path / name).is_file() for name in ("last.pt", "best.pt")) else []
    if depth == 0:
        return here
    try:
        children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in SKIP)
    except OSError:
        if unread is not None:
            unread.append(path)
        return here
    return here + [run for child in children for run in find_runs(child, depth - 1, unread)]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _finite(value: Any) -> float | None:
    """A step or a time: a number, and finite (``1e400`` in a damaged log reads as inf)."""
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None


def _count(value: Any) -> float | None:
    """A step or a training time: a finite number, and not negative (a hand-edited log may hold any)."""
    number = _finite(value)
    return number if number is not None and number >= 0 else None


EVAL_SPLITS = ("test", "val", "train", "all")  # what `artforge eval` records


def _eval_summary(ev: Any) -> dict | None:
    """eval.json as `runs` shows it: the parts `artforge eval` could have written. A step that is not a
    whole number of 0 or more, a split eval has not, or a figure that is NaN or infinite comes from a hand
    edit or a damaged file; a figure that is null is one eval found NaN or infinite (it writes those as
    null). Each is named in ``damaged`` (``step``, ``split``, ``figures.NAME``) and left out."""
    if not isinstance(ev, dict) or not isinstance(ev.get("figures"), dict):
        return None
    damaged = []
    step = _count(ev.get("step"))
    if step is None or not step.is_integer():
        damaged.append("step")
    split = ev.get("split") if ev.get("split") in EVAL_SPLITS else None
    if split is None:
        damaged.append("split")
    figures = {}
    for k, v in ev["figures"].items():
        if v is None or isinstance(v, float) and not math.isfinite(v):  # null: how eval writes NaN and inf
            damaged.append(f"figures.{k}")
        else:
            figures[k] = v
    out = {"step": None if "step" in damaged else int(step), "split": split, "figures": figures}
    if isinstance(ev.get("note"), str):  # e.g. an --init run trained on the test items
        out["note"] = ev["note"]
    if damaged:
        out["damaged"] = damaged
    return out


def summarize(run: Path) -> dict:
    """What a run folder says about itself; ``problem`` is set (and the rest may be missing) when its
    config cannot be read."""
    from artforge.engine.run import read_metrics, run_config_problem

    row: dict[str, Any] = {"run": str(run)}
    if not os.access(run, os.R_OK | os.X_OK):
        return {**row, "problem": "cannot read the folder (permission denied)"}
    try:
        config = json.loads((run / "config.json").read_text())
    except FileNotFoundError:  # found by its checkpoints, which `runs` never opens
        if (run / "last.pt").is_file():
            how = (f"a copy is in last.pt: `artforge train --resume --out {shown(run)}` restores it, training on to "
                   "the planned steps")
        else:
            how = "a copy is in best.pt, which sample, eval and export read; --resume needs last.pt"
        return {**row, "problem": f"config.json is missing ({how})"}
    except PermissionError:
        return {**row, "problem": "config.json: cannot read it (permission denied)"}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {**row, "problem": f"config.json: {first_line(exc)}"}
    problem = run_config_problem(config)
    if problem:
        return {**row, "problem": f"config.json: {problem}"}
    data, train = config["data"], config["train"]
    codec = data["codec"]
    row.update(model=config["model"], preset=config.get("preset"), created=config.get("created"),
               codec=codec["spec"] if isinstance(codec.get("spec"), str) and codec["spec"] else codec["codec"],
               data=data["source"] if isinstance(data.get("source"), str) and data["source"] else data["cache"],
               planned_steps=train.get("steps"), init=config.get("init"))
    records = read_metrics(run)
    trained = [r for r in records if r.get("split") == "train" and _count(r.get("step")) is not None]
    vals = [r for r in records if r.get("split") == "val" and _finite(r.get("loss")) is not None
            and _count(r.get("step")) is not None]
    # how far the run got: its last train line, or the stop line of a run stopped between log lines
    reached = [r for r in records if r.get("split") in ("train", "stop") and _count(r.get("step")) is not None]
    row["step"] = int(reached[-1]["step"]) if reached else 0
    row["seconds"] = _count(reached[-1].get("elapsed_s")) if reached else None
    row["last_train_loss"] = _number(trained[-1].get("loss")) if trained else None
    if vals:
        best = min(vals, key=lambda r: r["loss"])
        row["best_val_loss"], row["best_val_step"] = best["loss"], int(best["step"])
    row["checkpoints"] = [name for name in ("best.pt", "last.pt") if (run / name).is_file()]
    row["onnx"] = (run / "onnx" / "manifest.json").is_file()
    try:
        ev = _eval_summary(json.loads((run / "eval.json").read_text()))
        if ev is not None:
            row["eval"] = ev
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    return row


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 3600}h {s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _steps(row: dict) -> str:
    planned = row.get("planned_steps")
    return f"{row['step']}/{planned}" if planned else str(row["step"])


def _refusal(row: dict) -> BadInput:
    """Why a run given alone cannot be shown, in one line naming the file: its ``problem``."""
    run, problem = Path(row["run"]), row["problem"]
    if problem.startswith("config.json: "):
        return BadInput(run / "config.json", problem.removeprefix("config.json: "))
    return BadInput(run, problem)


def _show_one(row: dict) -> None:
    lines = [("run", shown(row["run"]))]
    model = row["model"] + (f" (preset {row['preset']})" if row.get("preset") else "")
    lines += [("model", model), ("codec", row["codec"]), ("data", shown(row["data"])),
              ("started", row.get("created") or ""), ("steps", _steps(row)),
              ("trained for", _duration(row.get("seconds")))]
    if row.get("init"):
        lines.append(("initialised from", shown(str(row["init"]))))
    if row.get("last_train_loss") is not None:
        lines.append(("last train loss", _fmt(row["last_train_loss"])))
    if "best_val_loss" in row:
        lines.append(("best val loss", f"{_fmt(row['best_val_loss'])} at step {row['best_val_step']}"))
    lines.append(("checkpoints", ", ".join(row["checkpoints"]) or "none"))
    lines.append(("ONNX export", "onnx/" if row["onnx"] else "none"))
    ev = row.get("eval")
    if ev:
        step, split = ev["step"] if ev["step"] is not None else "damaged", ev["split"] or "split damaged"
        lines.append((f"eval (step {step}, {split})", ""))
        if ev.get("note"):
            lines.append(("  note", shown(ev["note"])))
        lines += [(f"  {shown(k)}", shown(_fmt(v))) for k, v in ev["figures"].items()]
        figures = [k.removeprefix("figures.") for k in ev.get("damaged", ()) if k.startswith("figures.")]
        if figures:
            lines.append(("  damaged", f"{', '.join(map(shown, figures))} (not finite numbers; left out)"))
    else:
        lines.append(("eval", "none yet (artforge eval RUN)"))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        click.echo(f"{k:<{width}}  {v}".rstrip())


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(readable=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: every run's summary.")
@json_stdout
def runs(paths: tuple[Path, ...], as_json: bool) -> None:
    """List training runs: model, codec, steps, best validation loss, time, eval and export.

    PATHS are run folders or folders holding them (two levels down); default `runs/`, else the
    current folder. Given one run folder, it shows that run in full, with every figure of its last
    `artforge eval`, or fails (exit 1) if its config.json is damaged, unreadable or missing; a listing
    shows such runs as unreadable rows and goes on. Folders below PATHS that may not be read are not
    known to be runs: they are named in a note after the listing. Only config.json, metrics.jsonl and
    eval.json are read, never the checkpoints.
    """
    from artforge.fsutil import check_readable_folder

    if not paths:
        paths = (Path("runs"),) if Path("runs").is_dir() else (Path("."),)
    found: list[Path] = []
    unread: list[Path] = []
    for path in paths:
        check_readable_folder(path)  # a folder given that may not be read: refused, as other commands do
        if not path.exists():
            raise BadInput(path, "no such file or folder")
        if not path.is_dir():
            raise BadInput(path, "not a folder (give a run folder or a folder of runs)")
        below: list[Path] = []
        found += [r for r in find_runs(path, unread=below) if r not in found]
        unread += [u for u in below if u not in unread]
    rows = [summarize(r) for r in found]
    if as_json:
        echo_json(json.dumps(rows, indent=2))
        if unread:  # stdout stays the JSON list
            click.echo(_unread_note(unread), err=True)
        return
    if not rows:
        click.echo(f"no runs (folders with a config.json or checkpoints) in {', '.join(shown(p) for p in paths)}")
        if unread:
            click.echo(_unread_note(unread))
        return
    if len(rows) == 1 and len(paths) == 1 and found[0] == paths[0]:
        if "problem" in rows[0]:  # nothing to show: fail, as other commands given this run would
            raise _refusal(rows[0])
        _show_one(rows[0])
        return
    table = []
    for r in rows:
        if "problem" in r:
            table.append((shown(r["run"]), f"unreadable: {r['problem']}", "", "", "", "", ""))
            continue
        best = f"{_fmt(r['best_val_loss'])} @ {r['best_val_step']}" if "best_val_loss" in r else ""
        extras = [x for x, on in (("eval", "eval" in r), ("onnx", r["onnx"])) if on]
        table.append((shown(r["run"]), r["model"] + (f" ({r['preset']})" if r.get("preset") else ""), r["codec"],
                      _steps(r), best, _duration(r.get("seconds")), " ".join(extras)))
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for header in ("run", "model", "codec", "steps", "best val loss", "time", "has"):  # all may wrap: none is cut
        out.add_column(header, overflow="fold")
    for line in table:
        out.add_row(*(Text(c) for c in line))
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # a pipe or a log (make demo): rich would fold cells at its 80-column default; the rows are
        # short, so print them whole
        console = Console(width=10_000)
    console.print(out)
    bad = sum("problem" in r for r in rows)
    click.echo(f"{len(rows)} run(s){f', {bad} unreadable' if bad else ''}; artforge runs RUN shows one in full")
    if unread:
        click.echo(_unread_note(unread))


def _unread_note(unread: list[Path], most: int = 5) -> str:
    """One line naming the folders that could not be searched (the first ``most`` of them)."""
    names = ", ".join(shown(p) for p in unread[:most])
    more = f", and {len(unread) - most} more" if len(unread) > most else ""
    return f"could not read {len(unread)} folder{'s' if len(unread) > 1 else ''}: {names}{more}"


def register(cli: click.Group) -> None:
    cli.add_command(runs)
