"""`artforge runs`: listing training runs from their folders, without loading checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import TINY_HSV as TINY
from conftest import as_a_plain_user, invoke, subprocess_env


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_cache):
    """Two finished tiny runs (one evaluated and exported) and a run folder with a damaged config."""
    from click.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("runs")
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "6", "--eval-every", "3", "-o", root / "a")
    invoke(runner, "eval", root / "a")
    invoke(runner, "export", root / "a", "--onnx")
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "4", "-o", root / "group" / "b")
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    return root


def test_runs_lists_each_run_with_its_progress_and_best_validation(runner, runs_root):
    rows = {r["run"].replace(str(runs_root), "ROOT"): r for r in json.loads(invoke(runner, "runs", runs_root,
                                                                                   "--json").stdout)}
    assert set(rows) == {"ROOT/a", "ROOT/broken", "ROOT/group/b"}
    a = rows["ROOT/a"]
    assert a["model"] == "hsv-transformer" and a["preset"] == "tiny" and a["codec"] == "hsv322"
    assert (a["step"], a["planned_steps"]) == (6, 6) and a["checkpoints"] == ["best.pt", "last.pt"] and a["onnx"]
    vals = [json.loads(line) for line in (runs_root / "a" / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v["split"] == "val"]
    best = min(vals, key=lambda v: v["loss"])
    assert (a["best_val_loss"], a["best_val_step"]) == (best["loss"], best["step"]) and len(vals) == 2
    assert a["eval"]["figures"]["bits_per_pixel"] > 0
    assert rows["ROOT/group/b"]["step"] == 4 and "eval" not in rows["ROOT/group/b"]
    assert not rows["ROOT/group/b"]["onnx"]
    assert rows["ROOT/broken"]["problem"].startswith("config.json: ")

    out = invoke(runner, "runs", runs_root).stdout
    assert "3 run(s), 1 unreadable" in out and "6/6" in out and "4/4" in out


def test_a_checkpoint_beside_a_folder_of_runs_hides_none_of_them(runner, runs_root, tmp_path):
    """A best.pt copied to the top of a folder of runs (to share it, say) made `runs` list that folder
    alone, as a run whose config.json is missing, and none of the runs inside it."""
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(runs_root / "a", root / "a")
    shutil.copytree(runs_root / "group", root / "group")
    shutil.copy(runs_root / "a" / "best.pt", root / "best.pt")
    rows = {r["run"]: r for r in json.loads(invoke(runner, "runs", root, "--json").stdout)}
    assert set(rows) == {str(root), str(root / "a"), str(root / "group" / "b")}
    assert rows[str(root / "a")]["step"] == 6 and rows[str(root)]["problem"].startswith("config.json is missing")


def test_runs_into_a_pipe_prints_rows_whole_and_a_narrow_terminal_folds(runner, runs_root, monkeypatch):
    """Piped or logged (make demo), rich's 80-column default folded 'hsv-transformer (tiny)' over two
    lines; COLUMNS (a terminal's width) still folds cells instead of cutting any."""
    monkeypatch.delenv("COLUMNS", raising=False)
    out = invoke(runner, "runs", runs_root).stdout
    row = next(line for line in out.splitlines() if line.startswith(str(runs_root / "a")))
    assert "hsv-transformer (tiny)" in row and "eval onnx" in row and len(row) > 80
    monkeypatch.setenv("COLUMNS", "60")
    narrow = invoke(runner, "runs", runs_root).stdout
    assert max(len(line) for line in narrow.splitlines()[:-1]) <= 60 and "hsv-transformer (tiny)" not in narrow


def test_one_run_folder_is_shown_in_full(runner, runs_root):
    out = invoke(runner, "runs", runs_root / "a").stdout
    for text in ("hsv-transformer (preset tiny)", "steps", "6/6", "best val loss", "at step",
                 "ONNX export", "onnx/", "bits_per_pixel", "next_token_accuracy"):
        assert text in out, out
    assert "none yet (artforge eval RUN)" in invoke(runner, "runs", runs_root / "group" / "b").stdout


def test_runs_refuses_what_is_not_a_folder_in_one_line(runner, runs_root, tmp_path):
    r = invoke(runner, "runs", tmp_path / "missing", ok=False)
    assert r.output.count("\n") == 1 and "missing: no such file or folder" in r.output
    r = invoke(runner, "runs", runs_root / "a" / "config.json", ok=False)
    assert r.output.count("\n") == 1 and "not a folder" in r.output
    assert "no runs" in invoke(runner, "runs", tmp_path).stdout


def test_runs_reads_no_checkpoint_and_never_imports_torch(runs_root):
    code = ("import sys\nfrom artforge.cli import cli\n"
            f"cli.main(['runs', {str(runs_root)!r}], prog_name='artforge', standalone_mode=False)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_run_stopped_between_log_lines_shows_the_step_its_last_checkpoint_holds(runner, tiny_cache, tmp_path):
    """--max-time (like Ctrl-C and SIGTERM) stops between log lines and saves last.pt there; `runs` must say
    how far the run got (the step --resume continues from), not the step of the last log line."""
    import torch

    run = tmp_path / "stopped"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "1000", "--set", "log_every=1000",
           "--max-time", "0.001", "-o", run)
    step = torch.load(run / "last.pt", weights_only=True)["step"]
    assert 0 < step < 1000
    row = json.loads(invoke(runner, "runs", run, "--json").stdout)[0]
    assert (row["step"], row["planned_steps"]) == (step, 1000) and row["seconds"] is not None
    assert f"{step}/1000" in invoke(runner, "runs", run).stdout


def test_a_damaged_metrics_log_does_not_stop_the_listing(runner, runs_root, tmp_path):
    import shutil

    run = tmp_path / "root" / "c"
    shutil.copytree(runs_root / "a", run)
    good = (run / "metrics.jsonl").read_text()
    # 1e400 is valid JSON and reads as inf: int(inf) ended `artforge runs` as an internal error
    for bad in ('{"split": "train", "step": 1e400, "loss": 1.0}',
                '{"split": "train", "step": 7, "loss": 1.0, "elapsed_s": 1e400}',
                '{"split": "val", "loss": 0.001}', '{"split": "val", "step": "2", "loss": 0.001}'):
        (run / "metrics.jsonl").write_text(good + bad + "\n")
        row = json.loads(invoke(runner, "runs", tmp_path / "root", "--json").stdout)[0]
        assert row["step"] in (6, 7) and (row["seconds"] is None) == (row["step"] == 7)
        assert row["best_val_loss"] > 0.001 and isinstance(row["best_val_step"], int)  # a val line without a step
        assert "best val loss" in invoke(runner, "runs", run).stdout


def test_a_hand_edited_eval_and_log_show_only_what_is_valid(runner, runs_root, tmp_path):
    """eval.json and metrics.jsonl were shown as they were: 'eval (step s, ...)', figures 'nan' and
    'inf', a note's line break splitting the output, and a negative elapsed_s as 'trained for -5s'."""
    import shutil

    run = tmp_path / "root" / "c"
    shutil.copytree(runs_root / "a", run)
    ev = json.loads((run / "eval.json").read_text())
    good = dict(ev["figures"])
    ev.update(step="s", split=["val"], note="one\ntwo")
    ev["figures"].update(bits_per_pixel=float("nan"), next_token_accuracy=float("inf"))
    (run / "eval.json").write_text(json.dumps(ev))  # NaN and Infinity: what json.dumps writes, and reads back
    lines = (run / "metrics.jsonl").read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if json.loads(line)["split"] == "train")
    lines[last] = json.dumps({**json.loads(lines[last]), "elapsed_s": -5})
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    out = invoke(runner, "runs", run).stdout
    assert "eval (step damaged, split damaged)" in out and "one\\ntwo" in out and "\ntwo" not in out
    assert "damaged" in out and "bits_per_pixel, next_token_accuracy (not finite numbers; left out)" in out
    assert "nan" not in out and "inf" not in out and "-5s" not in out
    for k in good.keys() - {"bits_per_pixel", "next_token_accuracy"}:
        assert f"  {k} " in out
    def no_constants(name):
        raise AssertionError(f"--json wrote {name}, which JSON has no spelling for")

    row = json.loads(invoke(runner, "runs", run, "--json").stdout, parse_constant=no_constants)[0]
    assert row["seconds"] is None and row["eval"]["step"] is None and row["eval"]["split"] is None
    assert row["eval"]["damaged"] == ["step", "split", "figures.bits_per_pixel", "figures.next_token_accuracy"]
    assert "bits_per_pixel" not in row["eval"]["figures"]
    table = invoke(runner, "runs", run.parent).stdout
    assert "-5s" not in table and "eval onnx" in table


def test_an_eval_figure_written_as_null_is_shown_as_damaged(runner, runs_root, tmp_path):
    """eval writes a NaN or infinite figure (a diverged model's) as null; `runs RUN` showed it as 'None'
    instead of naming it with the other figures that are not finite numbers."""
    import shutil

    run = tmp_path / "root" / "c"
    shutil.copytree(runs_root / "a", run)
    ev = json.loads((run / "eval.json").read_text())
    ev["figures"]["bits_per_pixel"] = None
    (run / "eval.json").write_text(json.dumps(ev))

    out = invoke(runner, "runs", run).stdout
    damaged = [" ".join(line.split()) for line in out.splitlines() if line.strip().startswith("damaged")]
    assert "None" not in out and damaged == ["damaged bits_per_pixel (not finite numbers; left out)"], out
    assert "  next_token_accuracy " in out
    row = json.loads(invoke(runner, "runs", run, "--json").stdout)[0]
    assert row["eval"]["damaged"] == ["figures.bits_per_pixel"] and "bits_per_pixel" not in row["eval"]["figures"]
    assert "eval onnx" in invoke(runner, "runs", run.parent).stdout


def test_one_run_that_cannot_be_shown_fails_in_one_line(runner, runs_root, tmp_path):
    """`runs RUN` printed the problem of a run whose config.json is damaged, unreadable or gone and
    exited 0, so a script could not tell it from a run shown in full; a listing still goes on past it."""
    import shutil

    r = invoke(runner, "runs", runs_root / "broken", ok=False)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert r.output.startswith(f"Error: {runs_root / 'broken' / 'config.json'}: Expecting property name"), r.output
    (tmp_path / "copied").mkdir()
    shutil.copy(runs_root / "a" / "best.pt", tmp_path / "copied" / "best.pt")
    r = invoke(runner, "runs", tmp_path / "copied", ok=False)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert r.output.startswith(f"Error: {tmp_path / 'copied'}: config.json is missing (a copy is in best.pt"), r.output
    # --json is a list of rows, for one run as for many: the problem is in its row
    assert "problem" in json.loads(invoke(runner, "runs", runs_root / "broken", "--json").stdout)[0]
    assert "3 run(s), 1 unreadable" in invoke(runner, "runs", runs_root).stdout

    run = tmp_path / "root" / "locked"
    shutil.copytree(runs_root / "a", run)
    (run / "config.json").chmod(0)
    try:
        (one, alone), (code, listed) = as_a_plain_user(["runs", run], ["runs", run.parent])
    finally:
        (run / "config.json").chmod(0o644)
    assert one == 1 and alone == f"Error: {run / 'config.json'}: cannot read it (permission denied)\n", alone
    assert code == 0 and "unreadable: config.json: cannot read it (permission denied)" in listed, listed


def test_a_folder_that_may_not_be_read_is_named_after_the_listing_not_listed_as_a_run(runs_root, tmp_path):
    """A folder `runs` may not read (a root-owned lost+found, anything chmod 000) was listed as an
    unreadable run, though nothing shows it is one; a run whose config.json may not be read still is."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(runs_root / "a", root / "a")
    shutil.copytree(runs_root / "a", root / "damaged")
    lost, deep = root / "lost+found", root / "group" / "locked"
    for folder in (lost, deep):
        shutil.copytree(runs_root / "a", folder)  # a run, but nothing outside it can tell
    locked = (root / "damaged" / "config.json", lost, deep)
    for f in locked:
        f.chmod(0)
    try:
        (code, table), (code_json, listed), (code_empty, empty) = as_a_plain_user(
            ["runs", root], ["runs", root, "--json"], ["runs", root / "group"])
    finally:
        for f in locked:
            f.chmod(0o755)
    note = f"could not read 2 folders: {deep}, {lost}"
    assert code == 0 and table.splitlines()[-1] == note, table
    assert table.splitlines()[-2].startswith("2 run(s), 1 unreadable;"), table
    assert "lost+found" not in table.replace(note, "") and "locked" not in table.replace(note, ""), table
    row = next(line for line in table.splitlines() if line.startswith(str(root / "damaged")))
    assert "unreadable: config.json: cannot read it (permission denied)" in row, table
    assert code_json == 0 and listed.endswith(f"]\n{note}\n"), listed  # the note on stderr, after the JSON
    rows = json.loads(listed.removesuffix(f"{note}\n"))
    assert [r["run"] for r in rows] == [str(root / "a"), str(root / "damaged")] and "problem" in rows[1], listed
    assert code_empty == 0 and empty.splitlines() == [f"no runs (folders with a config.json or checkpoints) in "
                                                      f"{root / 'group'}", f"could not read 1 folder: {deep}"], empty


@pytest.mark.parametrize("codec, source, shown_codec, problem", [
    ({"a": 1}, None, None, "config.json: 'data.codec' names no codec"),
    ({"codec": "hsv", "spec": 5}, ["x"], "hsv", None),  # a spec or source that is not text: the name stands
])
def test_a_config_with_a_damaged_codec_or_source_is_a_row_not_an_internal_error(runner, runs_root, tmp_path, codec,
                                                                                source, shown_codec, problem):
    """A run config whose data.codec named no codec (or whose spec or source was not text) ended the
    whole listing as an internal error (rich cannot show None or a number as text)."""
    import shutil

    run = tmp_path / "r"
    shutil.copytree(runs_root / "a", run)
    config = json.loads((run / "config.json").read_text())
    config["data"].update(codec=codec, source=source)
    (run / "config.json").write_text(json.dumps(config))
    listing = invoke(runner, "runs", tmp_path)
    assert "1 run(s)" in listing.stdout and "internal error" not in listing.output
    row = json.loads(invoke(runner, "runs", run, "--json").stdout)[0]
    assert row.get("problem") == problem and row.get("codec") == shown_codec, row
    if problem is None:
        assert row["data"] == config["data"]["cache"]
