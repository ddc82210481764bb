"""A test split that chooses nothing: `--set train.test_fraction` keeps items out of training,
validation and checkpoint choice, for `artforge eval --split test`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from artforge.data.dataset import TokenDataset

from conftest import TINY_HSV as TINY
from conftest import invoke, subprocess_env

SPLIT = ["--set", "val_fraction=0.25", "--set", "train.test_fraction=0.25"]


@pytest.fixture(scope="module")
def held_run(tmp_path_factory, tiny_cache, one_thread) -> Path:
    from click.testing import CliRunner

    run = tmp_path_factory.mktemp("held") / "run"
    invoke(CliRunner(), "train", *TINY, *SPLIT, "--data", tiny_cache, "--steps", "2", "-o", run)
    return run


def _rows(tiny_cache, split: str) -> set[int]:
    return set(TokenDataset(tiny_cache, split, 0.25, test_fraction=0.25).indices.tolist())


def _rows_read(runner, monkeypatch, *train_args):
    """`artforge train TRAIN_ARGS`, and every cache row it read (training, validation, anything else)."""
    read: list[int] = []
    real = TokenDataset._read

    def spy(self, rows):
        read.extend(int(r) for r in rows)
        return real(self, rows)

    monkeypatch.setattr(TokenDataset, "_read", spy)
    r = invoke(runner, "train", *train_args)
    monkeypatch.undo()
    return set(read), r


def test_the_trainer_never_reads_a_test_item(runner, tiny_cache, tmp_path, monkeypatch, one_thread):
    """Every row the trainer reads (training batches, validation, anything else) is recorded: over four
    epochs it reads every training and validation item, and no test item."""
    read, r = _rows_read(runner, monkeypatch, *TINY, *SPLIT, "--data", tiny_cache, "--steps", "12", "--eval-every",
                         "6", "-o", tmp_path / "run")
    test, train, val = _rows(tiny_cache, "test"), _rows(tiny_cache, "train"), _rows(tiny_cache, "val")
    assert test and not read & test
    assert read == train | val  # the spy saw the run's reads: all of them, so the check above means something
    assert f"({len(train)} train / {len(val)} val / {len(test)} test, held out)" in r.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["test_fraction"] == 0.25


def test_test_fraction_is_checked_in_one_line(runner, tiny_cache, tmp_path):
    for sets, says in ((["--set", "train.test_fraction=-0.1"], "train setting test_fraction must be >= 0"),
                       (["--set", "train.test_fraction=nan"], "test_fraction must be a finite number"),
                       (["--set", "val_fraction=0.5", "--set", "test_fraction=0.5"],
                        "val_fraction + test_fraction must be below 1")):
        r = invoke(runner, "train", *TINY, "--data", tiny_cache, *sets, "-o", tmp_path / "x", ok=False)
        assert says in r.output and len(r.output.strip().splitlines()) == 1, r.output
        assert not (tmp_path / "x").exists()


def _copy(run: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("config.json", "best.pt", "last.pt", "metrics.jsonl"):
        (to / name).write_bytes((run / name).read_bytes())
    return to


def test_resume_keeps_the_split_the_run_trained_on(runner, held_run, tmp_path):
    """A changed test_fraction (config.json edited) would move items the run trained on into the test
    split: refused, nothing trained. --set is refused on --resume as before."""
    copy = _copy(held_run, tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    for key, value in (("test_fraction", 0.1), ("test_fraction", 0.0), ("val_fraction", 0.2)):
        (copy / "config.json").write_text(json.dumps({**config, "train": {**config["train"], key: value}}))
        r = invoke(runner, "train", "--resume", "-o", copy, "--steps", "3", ok=False)
        assert f"config.json: train.{key} is {value}, but the run trained with 0.25 (last.pt)" in r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
    assert torch.load(copy / "last.pt", weights_only=True)["step"] == 2  # nothing trained
    r = invoke(runner, "train", "--resume", "-o", copy, "--steps", "3", "--set", "train.test_fraction=0.1", ok=False)
    assert "drop --data/--codec/--labels/--size/--set" in r.output
    (copy / "config.json").write_text(json.dumps(config))
    invoke(runner, "train", "--resume", "-o", copy, "--steps", "3", "-q")
    assert torch.load(copy / "last.pt", weights_only=True)["step"] == 3


def _as_before_test_fraction(run: Path) -> None:
    """Make a run look like one trained before test_fraction existed: no such key anywhere."""
    config = json.loads((run / "config.json").read_text())
    del config["train"]["test_fraction"]
    (run / "config.json").write_text(json.dumps(config))
    for name in ("best.pt", "last.pt"):
        state = torch.load(run / name, weights_only=True)
        inner = json.loads(state["config"])
        del inner["train"]["test_fraction"]
        torch.save({**state, "config": json.dumps(inner)}, run / name)


def test_runs_from_before_test_fraction_have_no_test_split(runner, tiny_cache, tmp_path):
    run = tmp_path / "old"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "2", "-o", run)
    _as_before_test_fraction(run)
    invoke(runner, "train", "--resume", "-o", run, "--steps", "3", "-q")  # no test_fraction: 0, as it trained
    res = json.loads(invoke(runner, "eval", run, "--json").stdout)
    assert res["split"] == "val" and res["samples"] == len(TokenDataset(tiny_cache, "val", 0.1))
    r = invoke(runner, "eval", run, "--split", "test", ok=False)
    assert "the run kept no test split" in r.output and "--set train.test_fraction=0.1" in r.output


def test_eval_uses_the_test_split_of_a_run_that_keeps_one(runner, held_run, tiny_cache):
    out = invoke(runner, "eval", held_run).output
    n_test = len(_rows(tiny_cache, "test"))
    assert out.splitlines()[0].endswith(f"step 2 on {n_test} test samples of {tiny_cache}:")
    res = json.loads((held_run / "eval.json").read_text())
    assert res["split"] == "test" and res["samples"] == n_test
    assert "eval (step 2, test)" in invoke(runner, "runs", held_run).output
    for split, n in (("val", len(_rows(tiny_cache, "val"))), ("train", len(_rows(tiny_cache, "train"))),
                     ("all", 64), ("test", n_test)):
        res = json.loads(invoke(runner, "eval", held_run, "--split", split, "--json").stdout)
        assert (res["split"], res["samples"]) == (split, n)
        assert json.loads((held_run / "eval.json").read_text())["split"] == split
    assert f"step 2 on all 64 samples of {tiny_cache}:" in invoke(runner, "eval", held_run, "--split", "all").output


def test_eval_refuses_the_test_split_of_a_run_without_one(runner, tiny_cache, tmp_path):
    run = tmp_path / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "1", "-o", run)
    res = json.loads(invoke(runner, "eval", run, "--json").stdout)
    assert res["split"] == "val" and res["samples"] == len(TokenDataset(tiny_cache, "val", 0.1))
    before = (run / "eval.json").read_text()
    r = invoke(runner, "eval", run, "--split", "test", ok=False)
    assert r.output.strip() == (f"Error: {run}: the run kept no test split (its train.test_fraction is 0); "
                                "evaluate --split val, or keep one in a new run with --set train.test_fraction=0.1")
    assert (run / "eval.json").read_text() == before


def test_a_loaded_run_gives_its_splits_as_it_cut_them(held_run):
    from artforge.data.splits import split_index_sets
    from artforge.engine.run import load_run

    loaded = load_run(held_run)
    val, test = loaded.fractions()
    assert test > 0
    with h5py.File(loaded.config["data"]["cache"], "r") as f:
        names = f["names"][:].astype(str).tolist()
    want = split_index_sets(names, val, test)
    for split in ("train", "val", "test"):
        assert list(loaded.dataset(split).indices) == list(want[split])


def test_a_test_split_seen_by_the_init_run_is_noted(runner, tiny_cache, held_run, tmp_path, one_thread):
    """--init from a run that trained on this run's test items (it kept no test split) makes the
    test figures optimistic: train and eval say so, eval.json keeps the note; a run started from one
    with the same split has nothing to note, and the note follows a chain of --init runs back."""
    plain = tmp_path / "plain"
    invoke(runner, "train", *TINY, "--set", "val_fraction=0.25", "--data", tiny_cache, "--steps", "2", "-o", plain)
    test = _rows(tiny_cache, "test")
    r = invoke(runner, "train", *SPLIT, "--init", plain, "--data", tiny_cache, "--steps", "2", "--batch-size", "8",
               "-q", "-o", tmp_path / "leaky")
    says = f"{len(test)} of the {len(test)} test items were trained on by a run this one was started from"
    assert says in r.output
    r = invoke(runner, "eval", tmp_path / "leaky")
    assert "test samples" in r.output and says in r.output
    assert says in json.loads((tmp_path / "leaky" / "eval.json").read_text())["note"]
    assert says in invoke(runner, "runs", tmp_path / "leaky").output
    assert "note" not in json.loads(invoke(runner, "eval", tmp_path / "leaky", "--split", "val", "--json").stdout)

    r = invoke(runner, "train", *SPLIT, "--init", held_run, "--data", tiny_cache, "--steps", "2", "--batch-size", "8",
               "-q", "-o", tmp_path / "clean")
    assert "note:" not in r.output and "note" not in json.loads(
        invoke(runner, "eval", tmp_path / "clean", "--json").stdout)

    r = invoke(runner, "train", *SPLIT, "--init", tmp_path / "leaky", "--data", tiny_cache, "--steps", "2",
               "--batch-size", "8", "-q", "-o", tmp_path / "grandchild")
    assert says in r.output  # leaky's own ancestor trained on them
    import shutil

    shutil.rmtree(tmp_path / "plain")  # its best.pt alone would still say what it trained on
    assert "could not check whether" in invoke(runner, "eval", tmp_path / "grandchild").output


def test_a_test_fraction_too_small_to_hold_an_item_is_said_by_train_and_eval(runner, tiny_cache, tmp_path):
    """test_fraction > 0 that cuts no item of the cache: the run keeps no test split after all. Training
    says so (even with -q), and eval, whose default is then the empty test split, says why in one line
    and what to do, rather than a bare 'has no test samples'."""
    run = tmp_path / "run"
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--set", "train.test_fraction=0.000001",
               "--steps", "1", "-o", run)
    assert len(_rows_at(tiny_cache, 0.1, 0.000001)) == 0
    assert "warning: " in r.output and "no test samples at test_fraction 1e-06" in r.output, r.output
    r = invoke(runner, "eval", run, ok=False)
    assert r.output.strip() == (f"Error: {tiny_cache}: has no test samples at the run's train.test_fraction "
                                "1e-06; evaluate --split val"), r.output
    assert not (run / "eval.json").exists()
    assert json.loads(invoke(runner, "eval", run, "--split", "val", "--json").stdout)["split"] == "val"


def _rows_at(tiny_cache, val: float, test: float) -> set[int]:
    return set(TokenDataset(tiny_cache, "test", val, test_fraction=test).indices.tolist())


def test_with_no_validation_split_the_trainer_validates_on_training_items_only(runner, tiny_cache, tmp_path,
                                                                               monkeypatch, one_thread):
    """val_fraction 0 and a test split: validation falls back to the training split, which must still
    leave the test items out (best.pt would otherwise be chosen on them)."""
    read, _ = _rows_read(runner, monkeypatch, *TINY, "--set", "val_fraction=0", "--set", "train.test_fraction=0.25",
                         "--data", tiny_cache, "--steps", "2", "--eval-every", "1", "-o", tmp_path / "run")
    sets = {k: set(TokenDataset(tiny_cache, k, 0.0, test_fraction=0.25).indices.tolist()) for k in ("train", "test")}
    assert sets["test"] and not read & sets["test"]
    assert read == sets["train"]


def test_data_info_shows_the_split_training_would_make_without_torch(runner, tiny_cache):
    sp = json.loads(invoke(runner, "data", "info", tiny_cache, "--val-fraction", "0.25", "--test-fraction", "0.25",
                           "--json").stdout)["splits"]
    assert (sp["train"], sp["val"], sp["test"]) == tuple(len(_rows(tiny_cache, k)) for k in ("train", "val", "test"))
    out = invoke(runner, "data", "info", tiny_cache).output
    n_val = len(TokenDataset(tiny_cache, "val", 0.1).indices)
    assert f"{64 - n_val} train / {n_val} val (val_fraction 0.1)" in out  # training's defaults
    r = invoke(runner, "data", "info", tiny_cache, "--val-fraction", "0.6", "--test-fraction", "0.4", ok=False)
    assert "--val-fraction + --test-fraction must be below 1" in r.output
    code = ("import sys\nfrom artforge.cli import cli\n"
            f"cli.main(['data', 'info', {str(tiny_cache)!r}], prog_name='artforge', standalone_mode=False)\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "False", done.stderr


def test_eval_on_another_data_set_uses_all_of_it(runner, held_run, tiny_cache, emoji, tmp_path):
    """--data with a cache that shares no item (by name) with the run's: every item is unseen, so the
    default is all of it, said in a note; a cache of the same items keeps the split rule."""
    from artforge.data.cache import build_cache

    for stem, prefix in (("other", "x"), ("same", "e")):
        np.savez(tmp_path / f"{stem}.npz", images=emoji[:40],
                 names=np.array([f"{prefix}{i:03d}" for i in range(40)]))
        build_cache(str(tmp_path / f"{stem}.npz"), "hsv322", tmp_path / f"{stem}.h5", size=8, workers=1,
                    progress=False)
    res = json.loads(invoke(runner, "eval", held_run, "--data", tmp_path / "other.h5", "--json").stdout)
    assert (res["split"], res["samples"]) == ("all", 40) and "all of it is evaluated" in res["note"]
    assert "on all 40 samples" in invoke(runner, "eval", held_run, "--data", tmp_path / "other.h5").output
    res = json.loads(invoke(runner, "eval", held_run, "--data", tmp_path / "same.h5", "--json").stdout)
    assert res["split"] == "test" and res["samples"] < 40 and "note" not in res
    res = json.loads(invoke(runner, "eval", held_run, "--data", tmp_path / "other.h5", "--split", "test",
                            "--json").stdout)
    assert res["split"] == "test" and res["samples"] < 40  # a --split given is the split used


def test_the_init_chain_is_followed_from_another_working_folder(runner, tiny_cache, tmp_path, monkeypatch,
                                                                one_thread):
    """--init given as a relative path: eval run from another folder still finds the init run (and
    its training items), rather than saying its config.json is gone."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    invoke(runner, "train", *TINY, "--set", "val_fraction=0.25", "--data", tiny_cache, "--steps", "2", "-o", "plain")
    invoke(runner, "train", *SPLIT, "--init", "plain", "--data", tiny_cache, "--steps", "2", "--batch-size", "8",
           "-q", "-o", "leaky")
    monkeypatch.chdir(tmp_path)
    test = _rows(tiny_cache, "test")
    out = invoke(runner, "eval", work / "leaky").output
    assert f"{len(test)} of the {len(test)} test items were trained on" in out, out


def test_an_init_checkpoint_outside_a_run_folder_is_checked_too(runner, tiny_cache, tmp_path, one_thread):
    """--init a copied best.pt (no config.json beside it): the config it carries says what it trained
    on, so the note says the test items were seen, not that they could not be checked."""
    import shutil

    plain = tmp_path / "plain"
    invoke(runner, "train", *TINY, "--set", "val_fraction=0.25", "--data", tiny_cache, "--steps", "2", "-o", plain)
    shutil.copy(plain / "best.pt", tmp_path / "copy.pt")
    test = _rows(tiny_cache, "test")
    r = invoke(runner, "train", *SPLIT, "--init", tmp_path / "copy.pt", "--data", tiny_cache, "--steps", "2",
               "--batch-size", "8", "-q", "-o", tmp_path / "leaky")
    assert f"{len(test)} of the {len(test)} test items were trained on" in r.output, r.output


def test_a_checkpoint_copied_into_another_runs_folder_is_its_own_run(runner, tiny_cache, emoji, tmp_path,
                                                                     one_thread):
    """A best.pt copied into another run's folder: that folder's config.json is not its run config. The
    --init check reads the config the copy carries, and eval and export write beside it under its own
    name, leaving the other run's eval.json and onnx/ as they were."""
    import shutil

    from artforge.data.cache import build_cache

    np.savez(tmp_path / "other.npz", images=emoji[:40], names=np.array([f"x{i:03d}" for i in range(40)]))
    build_cache(str(tmp_path / "other.npz"), "hsv322", tmp_path / "other.h5", size=8, workers=1, progress=False)
    invoke(runner, "train", *TINY, "--data", tmp_path / "other.h5", "--steps", "2", "-o", tmp_path / "host")
    invoke(runner, "eval", tmp_path / "host")
    host_eval = (tmp_path / "host" / "eval.json").read_text()
    plain = tmp_path / "plain"
    invoke(runner, "train", *TINY, "--set", "val_fraction=0.25", "--data", tiny_cache, "--steps", "2", "-o", plain)
    guest = tmp_path / "host" / "plain-best.pt"
    shutil.copy(plain / "best.pt", guest)
    test = _rows(tiny_cache, "test")
    r = invoke(runner, "train", *SPLIT, "--init", guest, "--data", tiny_cache, "--steps", "2",
               "--batch-size", "8", "-q", "-o", tmp_path / "leaky")
    assert f"{len(test)} of the {len(test)} test items were trained on" in r.output, r.output  # not host's items
    res = json.loads(invoke(runner, "eval", guest, "--json").stdout)
    assert res["cache"] == str(tiny_cache) and res["split"] == "val"
    assert json.loads((tmp_path / "host" / "plain-best.eval.json").read_text())["checkpoint"] == str(guest)
    invoke(runner, "export", guest, "--onnx")
    assert (tmp_path / "host" / "plain-best-onnx" / "manifest.json").is_file()
    assert (tmp_path / "host" / "eval.json").read_text() == host_eval and not (tmp_path / "host" / "onnx").exists()
    r = invoke(runner, "sample", guest, "-n", "1", "-o", tmp_path / "host" / "metrics.jsonl", ok=False)
    assert "metrics.jsonl" in r.output and (tmp_path / "host" / "metrics.jsonl").stat().st_size > 0


def test_a_copied_checkpoint_named_by_checkpoint_is_its_own_run_too(runner, tiny_cache, tmp_path, one_thread):
    """`eval HOST --checkpoint COPY.pt` names the same copied checkpoint as `eval HOST/COPY.pt`: it writes
    COPY.eval.json, not the host run's eval.json (which `runs` shows as the host's own figures)."""
    import shutil

    host, plain = tmp_path / "host", tmp_path / "plain"
    for run in (host, plain):
        invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "2", "-o", run)
    invoke(runner, "eval", host)
    host_eval = (host / "eval.json").read_text()
    shutil.copy(plain / "best.pt", host / "plain-best.pt")
    invoke(runner, "eval", host, "--checkpoint", "plain-best.pt")
    assert (host / "eval.json").read_text() == host_eval
    assert json.loads((host / "plain-best.eval.json").read_text())["checkpoint"] == str(host / "plain-best.pt")
    invoke(runner, "eval", host, "--checkpoint", "last.pt")  # the run's own checkpoints still write its eval.json
    assert json.loads((host / "eval.json").read_text())["checkpoint"] == str(host / "last.pt")


def test_eval_on_a_data_set_an_init_run_trained_on_keeps_the_split_rule(runner, tiny_cache, emoji, tmp_path,
                                                                       one_thread):
    """--data with a cache that shares no item with the run's own but that its --init run trained on:
    those items are not unseen, so eval keeps the split rule and says nothing of 'all of it'."""
    from artforge.data.cache import build_cache

    np.savez(tmp_path / "other.npz", images=emoji[:40], names=np.array([f"x{i:03d}" for i in range(40)]))
    build_cache(str(tmp_path / "other.npz"), "hsv322", tmp_path / "other.h5", size=8, workers=1, progress=False)
    invoke(runner, "train", *TINY, "--data", tmp_path / "other.h5", "--steps", "2", "-o", tmp_path / "a")
    invoke(runner, "train", "--init", tmp_path / "a", "--data", tiny_cache, "--steps", "2", "--batch-size", "8", "-q",
           "-o", tmp_path / "b")
    res = json.loads(invoke(runner, "eval", tmp_path / "b", "--data", tmp_path / "other.h5", "--json").stdout)
    assert res["split"] == "val" and res["samples"] < 40 and "note" not in res, res


@pytest.mark.parametrize("option", ["--val-fraction", "--test-fraction"])
def test_data_info_refuses_a_fraction_that_is_not_a_number(runner, tiny_cache, option):
    """nan passes click's range check: data info said '... 0 val (val_fraction nan)' (exit 0) or an
    internal error, where training refuses it in one line."""
    r = invoke(runner, "data", "info", tiny_cache, option, "nan", ok=False)
    assert r.output.strip() == f"Error: {option} must be a number in [0, 1], got nan", r.output


def test_an_init_chain_too_long_to_follow_is_not_called_clean(held_run, tiny_cache, tmp_path):
    """The chain is followed for 32 runs; a longer one is 'could not check', not a clean bill."""
    from artforge.engine.run import trained_by_ancestors

    config = json.loads((held_run / "config.json").read_text())

    def chain(n: int) -> dict:
        for i in range(n):
            (tmp_path / f"c{n}-{i}").mkdir()
            link = {"init": str(tmp_path / f"c{n}-{i + 1}" / "best.pt")} if i + 1 < n else {}
            (tmp_path / f"c{n}-{i}" / "config.json").write_text(json.dumps({**config, **link}))
        return {**config, "init": str(tmp_path / f"c{n}-0" / "best.pt")}

    names = [f"e{i:03d}" for i in sorted(_rows(tiny_cache, "test"))]  # no run of the chain trained on them
    assert trained_by_ancestors(chain(5), names) == (set(), [])
    seen, unchecked = trained_by_ancestors(chain(40), names)
    assert not seen and unchecked == [str(tmp_path / "c40-32" / "best.pt")]
