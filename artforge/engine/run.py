"""Run folders and loading trained models from them (or from a bare checkpoint)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artforge.errors import ArtforgeError, BadInput

CONFIG = "config.json"
LAST = "last.pt"
BEST = "best.pt"


@dataclass
class LoadedRun:
    model: Any  # ArtModel
    codec: Any  # Codec
    config: dict
    checkpoint: Path
    step: int
    run_dir: Path | None

    def fractions(self) -> tuple[float, float]:
        """(val_fraction, test_fraction) the run was trained with."""
        return split_fractions(self.config.get("train", {}))

    def dataset(self, split: str = "val", cache: str | os.PathLike | None = None) -> Any:
        """A split of ``cache`` (default the run's own) as the run's training split it: a TokenDataset."""
        from artforge.data.dataset import TokenDataset

        val, test = self.fractions()
        return TokenDataset(cache or self.config["data"]["cache"], split, val, test_fraction=test)

    def files(self) -> list[Path]:
        """The run's own files (checkpoints, config, logs), and those of another run whose folder holds
        this checkpoint: no command output may replace them."""
        own = [self.checkpoint]
        folder = self.run_dir or self._host_folder()
        if folder is not None:
            own += [p for p in folder.iterdir() if p.suffix in (".pt", ".json", ".jsonl")]
        return own

    def output_path(self, name: str, foreign: str) -> Path:
        """Where a command writes its ``name`` output (eval.json, onnx/) by default: in the run folder, or
        beside a bare checkpoint; named ``foreign`` (after the checkpoint) when the checkpoint lies in
        another run's folder, whose own ``name`` must stay that run's."""
        if self.run_dir is not None:
            return self.run_dir / name
        return self.checkpoint.parent / (foreign if self._host_folder() is not None else name)

    def _host_folder(self) -> Path | None:
        """The folder of another run that holds this checkpoint (a copy), where that run's files are;
        None for a checkpoint in its own run folder or outside any."""
        parent = self.checkpoint.parent
        return parent if self.run_dir is None and (parent / CONFIG).is_file() else None


def find_checkpoint(run: str | os.PathLike, which: str = "best") -> tuple[Path, Path | None]:
    """(checkpoint file, run folder or None) for a run folder or a checkpoint path."""
    from artforge.fsutil import check_readable_folder

    p = Path(run)
    check_readable_folder(p)
    if p.is_dir():
        if Path(which).name != which:  # another run's file would be read as this run's (and eval.json rewritten)
            raise BadInput(which, "--checkpoint names a file inside the run folder (best, last or e.g. "
                                  "step-500.pt); to use another checkpoint, pass it as RUN")
        order = [BEST, LAST] if which == "best" else [LAST, BEST] if which == "last" else [which]
        for name in order:
            if (p / name).is_file():
                return p / name, p
        if which not in ("best", "last"):
            have = ", ".join(sorted(f.name for f in p.glob("*.pt"))) or "none"
            raise BadInput(p / which, f"no such checkpoint in the run folder (it has: {have})")
        if not (p / CONFIG).is_file():
            raise BadInput(p, "not an artforge run folder (no config.json or checkpoints)")
        raise BadInput(p, "run folder has no checkpoint yet (was training stopped before the first save?)")
    if p.is_file():
        return p, p.parent if (p.parent / CONFIG).is_file() else None
    raise BadInput(p, "no such run folder or checkpoint")


def read_checkpoint(run: str | os.PathLike, which: str = "best", expect_model: str | None = None,
                    mmap: bool = False) -> tuple[Path, Path | None, dict, dict]:
    """(checkpoint file, run folder or None, checkpoint state, run config) of a run or checkpoint;
    ``mmap``: leave the tensors in the file until read (for a caller that wants only the config)."""
    from artforge.engine.checkpoint import load_checkpoint

    ckpt_path, run_dir = find_checkpoint(run, which)
    state = load_checkpoint(ckpt_path, mmap=mmap)
    try:
        config = json.loads(state["config"])
        model_name = config["model"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise BadInput(ckpt_path, "checkpoint carries no run config") from None
    problem = run_config_problem(config)
    if problem:
        raise BadInput(ckpt_path, f"damaged run config ({problem})")
    if expect_model and model_name != expect_model:
        raise BadInput(ckpt_path, f"is a {model_name!r} run, not {expect_model!r}")
    # a checkpoint copied into another run's folder (passed as a path, or named by --checkpoint): that folder's
    # config and files are not its
    named = Path(run).is_file() or which not in ("best", "last")
    if run_dir is not None and named and not _same_run(_json_or_none(run_dir / CONFIG), config):
        run_dir = None
    return ckpt_path, run_dir, state, config


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _same_run(folder_config: Any, ckpt_config: dict) -> bool:
    """Whether a run folder's config.json and a checkpoint's copy of its run config are one run's: the same
    ``run_id`` (a resumed run keeps it; train settings may grow), or for runs made before there was one, the
    same model and cache made in the same second."""
    if not isinstance(folder_config, dict):
        return False
    if "run_id" in folder_config or "run_id" in ckpt_config:
        return folder_config.get("run_id") == ckpt_config.get("run_id")
    return all(folder_config.get(k) == ckpt_config.get(k) for k in ("model", "created")) and \
        (folder_config.get("data") or {}).get("cache") == (ckpt_config.get("data") or {}).get("cache")


def run_weights(state: dict, use_ema: bool = True) -> dict:
    """A checkpoint's model weights: the averaged (EMA) ones when the run kept them."""
    return state["ema"] if use_ema and state.get("ema") else state["model"]


def load_run(run: str | os.PathLike, which: str = "best", device: str = "cpu", expect_model: str | None = None,
             use_ema: bool = True) -> LoadedRun:
    """Rebuild the model (EMA weights when the run kept them) and codec of a run."""
    from artforge.codecs import codec_from_config
    from artforge.engine.checkpoint import fit_error
    from artforge.models import DataInfo, config_from_json, get_model_class
    from artforge.plugins import PluginError

    ckpt_path, run_dir, state, config = read_checkpoint(run, which, expect_model)
    model_name = config["model"]
    from artforge.plugins import registry

    models = registry("models")
    if model_name not in models and model_name not in models.conflicts and model_name not in models.refused:
        known = ", ".join(models.names()) or "none"
        raise BadInput(ckpt_path, f"a {model_name!r} run, and no installed plugin provides model {model_name!r} "
                                  f"(known: {known}); install the plugin that provides it")
    try:
        cls = get_model_class(model_name)
        info = DataInfo.from_json(config["data"])
        model = cls(config_from_json(cls, config["model_config"]), info)
        weights = run_weights(state, use_ema)
        step = int(state.get("step", 0))
        codec = codec_from_config(info.codec)
    except PluginError:
        raise
    except ArtforgeError as exc:
        raise BadInput(ckpt_path, f"its run config: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RuntimeError) as exc:
        raise BadInput(ckpt_path, f"unusable run config or state ({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise BadInput(ckpt_path, f"weights do not fit model {model_name!r} ({fit_error(exc)})") from None
    bad = next((k for k, v in model.state_dict().items() if v.is_floating_point() and not v.isfinite().all()), None)
    if bad is not None:  # a diverged run: every sample and figure from it would be NaN
        raise BadInput(ckpt_path, f"weight {bad} holds NaN or infinite values (did the run diverge?)")
    model.to(device).eval()
    return LoadedRun(model, codec, config, ckpt_path, step, run_dir)


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """A run folder's config.json, checked for the parts a resumed run reads."""
    from artforge.fsutil import check_readable, check_readable_folder

    check_readable_folder(run_dir)
    p = Path(run_dir) / CONFIG
    check_readable(p)
    try:
        config = json.loads(p.read_text())
    except FileNotFoundError:
        raise BadInput(p, "no such file: not a run folder") from None
    except UnicodeDecodeError:
        raise BadInput(p, "not a text file") from None
    except json.JSONDecodeError as exc:
        raise BadInput(p, f"invalid JSON ({exc})") from None
    problem = run_config_problem(config)
    if problem:
        raise BadInput(p, f"damaged run config ({problem})")
    return config


def resume_run_config(run_dir: str | os.PathLike) -> tuple[dict, bool]:
    """(the run config ``train --resume`` continues with, whether it came from last.pt): config.json,
    or where that alone is gone (deleted by hand) the copy every checkpoint carries, from last.pt,
    which the resumed run continues from anyway; the caller writes it back as config.json."""
    from artforge.fsutil import check_readable_folder

    run_dir = Path(run_dir)
    check_readable_folder(run_dir)
    if run_dir.is_dir() and not (run_dir / CONFIG).exists():
        if (run_dir / LAST).is_file():
            return read_checkpoint(run_dir / LAST)[3], True
        if (run_dir / BEST).is_file():
            raise BadInput(run_dir / CONFIG, f"missing, and so is {LAST}, so the run cannot continue where it "
                                             f"stopped; start a new run, e.g. with --init {run_dir / BEST}")
    return read_run_config(run_dir), False


def run_config_problem(config: Any) -> str | None:
    """What is missing or malformed in a run config, or None."""
    if not isinstance(config, dict):
        return "not a JSON object"
    for key, kind in (("model", str), ("model_config", dict), ("data", dict), ("train", dict)):
        if not isinstance(config.get(key), kind):
            return f"{key!r} is missing or not a {kind.__name__}"
    data = config["data"]
    if not isinstance(data.get("cache"), str) or not isinstance(data.get("codec"), dict):
        return "'data' lacks its cache path or codec"
    if not isinstance(data["codec"].get("codec"), str):  # what every codec config names (codec_from_config)
        return "'data.codec' names no codec"
    if not isinstance(data.get("token_shape"), list) or not isinstance(data.get("vocab_size"), int):
        return "'data' lacks its token shape or vocabulary size"
    return None


def split_fractions(train: dict) -> tuple[float, float]:
    """(val_fraction, test_fraction) of a run config's train settings; runs from before test splits
    existed have a test_fraction of 0."""
    return train.get("val_fraction", 0.1), train.get("test_fraction", 0.0)


def trained_by_ancestors(run_config: dict, names: list[str]) -> tuple[set[str], list[str]]:
    """Of ``names``, those that a run this one was started from (``--init``, followed back through
    the runs those were started from) trained on; and the ancestors that could not be checked (their
    config.json or cache is gone, or past the first 32 links). Splits go by item name, so names are
    compared, whatever cache file held them."""
    from artforge.data.cache import cache_names
    from artforge.data.splits import split_of

    wanted, seen, unchecked = set(names), set(), []
    link, visited = run_config.get("init"), set()
    while isinstance(link, str) and link not in visited and len(visited) < 32:
        visited.add(link)
        try:
            config = _ancestor_config(Path(link))
            train = config["train"]
            theirs = cache_names(config["data"]["cache"])
        except (ArtforgeError, OSError, KeyError):
            unchecked.append(link)
            break
        val, test = split_fractions(train)
        seen.update(n for n in theirs if n in wanted and split_of(n, val, test) == "train")
        link = config.get("init")
    if isinstance(link, str) and link not in visited and not unchecked:  # a chain longer than 32 runs: the rest unread
        unchecked.append(link)
    return seen, unchecked


def _ancestor_config(ckpt: Path) -> dict:
    """The run config of an --init checkpoint: the copy it carries (a copied best.pt may lie in any
    folder, even another run's), or where the file has gone, its run folder's config.json."""
    if ckpt.is_file():
        return read_checkpoint(ckpt, mmap=True)[3]  # the config only: the weights stay on disk
    return read_run_config(ckpt.parent)


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """metrics.jsonl's records; a line that is not a JSON object (a write cut short) is left out."""
    p = Path(run_dir) / "metrics.jsonl"
    try:
        text = p.read_text(errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: lists nested thousands deep
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def next_run_dir(root: str | os.PathLike, model: str) -> Path:
    root = Path(root)
    for i in range(1, 100000):
        p = root / f"{model}-{i}"
        if not p.exists():
            return p
    raise ArtforgeError(f"{root}: too many runs")
