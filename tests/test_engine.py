"""The training engine through `artforge train | sample | eval` on tiny models (CPU)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from PIL import Image

from artforge.plugins import get_plugin_manager

import toy_plugin
from conftest import TINY_HSV as TINY
from conftest import invoke, subprocess_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def final_weights(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def test_run_folder(runner, tiny_cache, tmp_path):
    run = tmp_path / "run"
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "6", "--eval-every", "3", "-o", run)
    assert "done at step 6" in r.output
    for name in ("config.json", "last.pt", "best.pt", "metrics.jsonl", "loss.png"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step-000003.png", "step-000006.png"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == "hsv-transformer" and cfg["model_config"]["n_layer"] == 1
    assert cfg["data"]["codec"]["spec"] == "hsv322" and cfg["data"]["token_shape"] == [8, 8]
    assert cfg["train"]["steps"] == 6 and cfg["preset"] == "tiny"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in lines if m["split"] == "train"]
    val = [m for m in lines if m["split"] == "val"]
    assert [m["step"] for m in val] == [3, 6] and train[-1]["step"] == 6
    assert {"loss", "lr", "steps_per_s", "samples_per_s", "tokens_per_s", "data_wait_frac"} <= set(train[-1])
    ckpt = torch.load(run / "last.pt", weights_only=True)  # plain tensors and primitives only
    assert ckpt["step"] == 6 and ckpt["format"] == "artforge-checkpoint"
    assert Image.open(run / "loss.png").size == (720, 420)


def test_training_loss_falls(runner, tiny_cache, tmp_path):
    run = tmp_path / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "60", "--lr", "3e-3", "-o", run)
    train = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in train if m["split"] == "train"]
    assert losses[-1] < losses[0] - 1.0  # from ~ln(129) = 4.9 nats towards the data's entropy


def test_models_listing(runner):
    models = {m["name"]: m for m in json.loads(invoke(runner, "models", "--json").stdout)}
    hsv = models["hsv-transformer"]
    assert hsv["codecs"] == ["hsv"] and set(hsv["presets"]) == {"tiny", "small", "base"}
    assert hsv["config"]["n_layer"]["default"] == 4


def test_models_name_shows_what_each_field_does_and_the_presets(runner):
    out = invoke(runner, "models", "hsv-transformer").stdout
    for text in ("n_layer", "transformer blocks", "dropout", "preset base: n_layer=8 n_head=8 n_embd=512",
                 "--set KEY=VALUE"):
        assert text in out, out
    one = json.loads(invoke(runner, "models", "sigil-dae", "--json").stdout)
    assert one["name"] == "sigil-dae" and one["config"]["noise"]["help"] == "share of pixels flipped while training"
    r = invoke(runner, "models", "hsv-transfromer", ok=False)
    assert r.output.count("\n") == 1 and "unknown model 'hsv-transfromer'; known: " in r.output


def test_every_first_party_config_field_says_what_it_does(runner):
    """`artforge models NAME` is where --set keys are documented: a field without a comment (or
    metadata help) would show an empty line there."""
    for m in json.loads(invoke(runner, "models", "--json").stdout):
        if get_plugin_manager().first_party(m["plugin"]):
            missing = [k for k, f in m["config"].items() if not f["help"]]
            assert not missing, f"{m['name']}: config fields without help: {missing}"


def test_field_help_reads_metadata_and_comments():
    import dataclasses

    from artforge.models import field_help

    @dataclasses.dataclass
    class Base:
        a: int = 1  # from the base class
        # the comment line above b,
        # and the next one
        b: str = "x # not a comment"
        c: int = dataclasses.field(default=3, metadata={"help": "from metadata"})  # not this one

    @dataclasses.dataclass
    class Sub(Base):
        a: int = 2  # the subclass says it first
        d: float = 0.5

    assert field_help(Base) == {"a": "from the base class", "b": "the comment line above b, and the next one",
                                "c": "from metadata"}
    assert field_help(Sub) == {"a": "the subclass says it first", "b": "the comment line above b, and the next one",
                               "c": "from metadata"}


def test_epochs_and_set(runner, tiny_cache, tmp_path):
    run = tmp_path / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--epochs", "2", "--eval-every", "100",
           "--set", "weight_decay=0.5", "--set", "train.ema=0.9", "-o", run)
    cfg = json.loads((run / "config.json").read_text())
    per_epoch = cfg["train"]["steps"] // 2
    assert per_epoch >= 5 and cfg["train"]["weight_decay"] == 0.5 and cfg["train"]["ema"] == 0.9
    assert torch.load(run / "last.pt", weights_only=True)["ema"] is not None


def test_ema_warms_up_instead_of_holding_the_initial_weights(runner, tiny_cache, tmp_path):
    """ema=0.999 after 4 steps: without a warm-up the average would still be 99.6% the initial
    weights; with it, it sits between them and the trained weights, nearer the trained ones."""
    run = tmp_path / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "4", "--set", "train.ema=0.999", "-o", run)
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "1", "--lr", "1e-12", "-o", tmp_path / "init")
    state = torch.load(run / "last.pt", weights_only=True)
    init = torch.load(tmp_path / "init" / "last.pt", weights_only=True)["model"]
    far = near = 0.0
    for k, w in state["model"].items():
        if w.dtype.is_floating_point:
            far += float((state["ema"][k] - init[k].float()).norm())
            near += float((state["ema"][k] - w.float()).norm())
    assert near < far


def test_bf16_precision_on_cpu(runner, tiny_cache, tmp_path):
    """--precision bf16 autocasts on the CPU too: the run trains, records it, and its weights differ
    from the fp32 run with the same seed (auto is fp32 on CPU)."""
    for name, precision in (("a", "auto"), ("f", "fp32"), ("b", "bf16")):
        invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "4", "--precision", precision,
               "-o", tmp_path / name)
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["train"]["precision"] == "bf16"
    auto, fp32, bf16 = (final_weights(tmp_path / n) for n in "afb")
    assert all(torch.equal(auto[k], fp32[k]) for k in auto)
    assert all(torch.isfinite(v).all() for v in bf16.values() if v.is_floating_point())
    assert any(not torch.equal(bf16[k], fp32[k]) for k in fp32)
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--set", "precision=fp16", "-o", tmp_path / "x",
               ok=False)
    assert "unknown precision 'fp16'" in r.output
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--set", "compile_mode=fastest", "-o", tmp_path / "y",
               ok=False)
    assert "unknown train.compile_mode 'fastest'" in r.output and "max-autotune" in r.output


def test_dataloader_workers_give_the_same_run(runner, tiny_cache, tmp_path):
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "5", "-o", tmp_path / "a")
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "5", "-j", "2", "-o", tmp_path / "b")
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "training ended before it could be stopped"
        ckpt = run / "last.pt"
        if ckpt.is_file():
            try:
                if torch.load(ckpt, weights_only=True)["step"] >= step:
                    return
            except Exception:  # noqa: BLE001 - caught between writes? (they are atomic, but be safe)
                pass
        time.sleep(0.05)
    raise AssertionError("no checkpoint in time")


# on the CPU even where there is a GPU: steps slow enough for a test to act between them
SLOW = ["--device", "cpu", "--plugin", "hsv-transformer", "--set", "n_layer=2", "--set", "n_embd=128",
        "--batch-size", "16", "--set", "ckpt_every=1", "--set", "log_every=1", "--steps", "24", "-q"]


def test_exact_resume_after_sigkill(runner, tiny_cache, tmp_path):
    invoke(runner, "train", *SLOW, "--data", tiny_cache, "-o", tmp_path / "whole")
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "artforge", "train", *SLOW, "--data", tiny_cache, "-o", run],
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_step(run, 8, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped = torch.load(run / "last.pt", weights_only=True)["step"]
    assert 8 <= stopped < 24
    invoke(runner, "train", "--resume", "--out", run, "-q")
    a, b = final_weights(tmp_path / "whole"), final_weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    losses = [[json.loads(x)["loss"] for x in (d / "metrics.jsonl").read_text().splitlines()
               if json.loads(x)["split"] == "train"] for d in (tmp_path / "whole", run)]
    assert losses[0] == losses[1]  # the log is continuous too: no duplicated or lost steps


def test_ctrl_c_saves_and_exits_cleanly(runner, tiny_cache, tmp_path):
    slow = [*SLOW[:-4], "log_every=7", *SLOW[-3:]]  # log windows that an interruption cuts
    assert slow.count("log_every=7") == 1 and "log_every=1" not in slow
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "artforge", "train", *slow, "--data", tiny_cache, "-o", run],
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(run, 3, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at step" in out and "--resume" in out and "Traceback" not in err
    step = torch.load(run / "last.pt", weights_only=True)["step"]
    assert f"interrupted at step {step}" in out
    invoke(runner, "train", "--resume", "--out", run, "-q")
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 24
    # the log window cut by the interruption is logged with the same mean as in an unbroken run
    invoke(runner, "train", *slow, "--data", tiny_cache, "-o", tmp_path / "whole")
    losses = [[(r["step"], r["loss"]) for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())
               if r["split"] == "train"] for d in (tmp_path / "whole", run)]
    assert losses[0] == losses[1]


def test_a_run_being_trained_is_not_trained_by_a_second_process(runner, tiny_cache, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "artforge", "train", *SLOW, "--data", tiny_cache, "-o", run],
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_step(run, 3, proc)
        # a --resume while it trains would write the same last.pt and cut metrics.jsonl back to its own step
        r = invoke(runner, "train", "--resume", "--out", run, "-q", ok=False)
        assert f"process {proc.pid} is training this run now" in r.output and len(r.output.splitlines()) == 1
        assert proc.poll() is None, "the first training did not survive the second"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the kernel drops a killed holder's lock: its run resumes, and finishes as one unbroken log
    invoke(runner, "train", "--resume", "--out", run, "-q")
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if r["split"] == "train"]
    assert steps == list(range(1, 25))


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl: runs are not locked")
@pytest.mark.parametrize("errno_name", ["ENOLCK", "EOPNOTSUPP"])
def test_a_file_system_without_flock_trains_unlocked(tmp_path, monkeypatch, errno_name):
    """Some network mounts refuse flock (ENOLCK, EOPNOTSUPP): the run trains unlocked, as before the
    lock, rather than ending as an internal OSError."""
    import errno
    import fcntl

    from artforge.fsutil import run_lock

    def no_flock(fd, op):
        raise OSError(getattr(errno, errno_name), "flock not supported")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with run_lock(tmp_path):
        entered = True
    assert entered


@pytest.mark.parametrize("damaged", ['{"split": "train", "step": 1e400, "loss": 1.0}',  # inf: int() overflowed
                                     '{"split": "val", "step": null, "loss": 1.0}',
                                     '{"split": "train", "loss": 1.0}'])  # no step: loss.png's plot failed
def test_resume_reads_past_a_damaged_metrics_line(runner, tiny_cache, tmp_path, damaged):
    run = tmp_path / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "2", "--eval-every", "1", "-o", run)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(damaged + "\n")
    r = invoke(runner, "train", "--resume", "--out", run, "--steps", "4", "-q")
    assert "done at step 4" in r.output
    vals = [rec["step"] for rec in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if rec.get("split") == "val" and "step" in rec]
    assert [v for v in vals if v is not None] == [1, 2, 3, 4]


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(runner, tiny_cache, tmp_path):
    assert get_plugin_manager().register(toy_plugin, "toy")
    run = tmp_path / "run"
    r = invoke(runner, "train", "--plugin", "unigram", "--data", tiny_cache, "--steps", "10", "--set",
               "nan_at_step=4", "--set", "ckpt_every=1", "-o", run, "-q", ok=False)
    assert "loss became nan at step 5" in r.output and "last good checkpoint" in r.output
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and torch.isfinite(ckpt["model"]["table"]).all()


def test_sample_and_eval(runner, tiny_cache, tmp_path):
    run = tmp_path / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "4", "-o", run)
    invoke(runner, "sample", run, "-n", "6", "-o", tmp_path / "g.png", "--tokens", tmp_path / "t.npz", "--seed", "3")
    tokens = np.load(tmp_path / "t.npz")["tokens"]
    assert tokens.shape == (6, 8, 8)
    invoke(runner, "sample", run, "-n", "6", "-o", tmp_path / "g2.png", "--tokens", tmp_path / "t2.npz", "--seed", "3")
    assert np.array_equal(tokens, np.load(tmp_path / "t2.npz")["tokens"])  # seeded
    invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "d.png")
    res = json.loads(invoke(runner, "eval", run, "--json").stdout)
    assert res["split"] == "val" and res["samples"] > 0
    assert {"bits_per_pixel", "next_token_accuracy", "png_bits_per_pixel"} <= set(res["figures"])
    assert json.loads((run / "eval.json").read_text())["figures"] == res["figures"]


def test_steps_and_epochs_together_are_refused_not_half_read(runner, tiny_cache, tmp_path):
    # --steps won and --epochs went unread (yet config.json recorded both)
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "3", "--epochs", "1", "-o", tmp_path / "a",
               ok=False)
    assert r.output.strip() == "Error: --steps 3 and --epochs 1 both give the run's length; pass one of them"
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--epochs", "0.5", "--set", "train.steps=3",
               "-o", tmp_path / "a", ok=False)
    assert "--steps 3 and --epochs 0.5 both give the run's length" in r.output
    assert not (tmp_path / "a").exists()
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "2", "-o", tmp_path / "b")
    r = invoke(runner, "train", "--resume", "--out", tmp_path / "b", "--steps", "4", "--epochs", "3", ok=False)
    assert r.output.strip() == "Error: --resume extends a run with --steps, not --epochs"


def test_train_bad_inputs(runner, tiny_cache, tmp_path):
    r = invoke(runner, "train", "--plugin", "nope", "--data", tiny_cache, ok=False)
    assert "unknown model 'nope'" in r.output and "hsv-transformer" in r.output
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--set", "n_layers=2", ok=False)
    assert "unknown config key 'n_layers'" in r.output and "n_layer" in r.output
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--set", "n_layer=two", ok=False)
    assert "expected int" in r.output
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--set", "preset=huge", ok=False)
    assert "no preset 'huge'" in r.output
    r = invoke(runner, "train", "--plugin", "hsv-transformer", "--data", tiny_cache, "--batch-size", "500", ok=False)
    assert "batch size 500 is larger than" in r.output
    if not torch.cuda.is_available():
        r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--device", "cuda", "-o", tmp_path / "c", ok=False)
        assert "CUDA is not available" in r.output
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "1", "-o", tmp_path / "r")
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "1", "-o", tmp_path / "r", ok=False)
    assert "already holds a run" in r.output


def test_init_starts_from_another_runs_weights(runner, tiny_cache, tmp_path, emoji):
    a, b = tmp_path / "a", tmp_path / "b"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "4", "--set", "dropout=0.0", "-o", a)
    # no --plugin or preset: the model and its config come from run a; lr 0 keeps its weights as they were
    invoke(runner, "train", "--init", a, "--data", tiny_cache, "--steps", "2", "--lr", "0", "--set", "flip=false",
           "-b", "8", "-q", "-o", b)
    cfg_a, cfg_b = (json.loads((r / "config.json").read_text()) for r in (a, b))
    assert cfg_b["model"] == "hsv-transformer" and cfg_b["init"] == str(a / "best.pt")
    assert cfg_b["model_config"] == {**cfg_a["model_config"], "flip": False} and cfg_b["preset"] == "tiny"
    wa = torch.load(a / "best.pt", weights_only=True)["model"]
    wb = final_weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert torch.load(b / "last.pt", weights_only=True)["step"] == 2  # its own schedule, from step 0

    def fails(*args: str) -> str:
        return invoke(runner, "train", "--init", a, "--data", tiny_cache, "--steps", "1", *args,
                      "-o", tmp_path / "x", ok=False).output

    assert "drop --set preset" in fails("--set", "preset=small")
    assert "size mismatch" in fails("--set", "n_embd=32")
    assert "not 'palette-ae'" in fails("--plugin", "palette-ae")
    assert "drop --init" in invoke(runner, "train", "--init", a, "--resume", "-o", b, ok=False).output
    np.savez(tmp_path / "e.npz", images=emoji[:32])
    invoke(runner, "data", "build", tmp_path / "e.npz", "-c", "hsv433", "--size", "8", "-o", tmp_path / "o.h5", "-q")
    r = invoke(runner, "train", "--init", a, "--data", tmp_path / "o.h5", "-o", tmp_path / "y", ok=False)
    assert "codec 'hsv322'" in r.output and "'hsv433'" in r.output


def test_model_codec_mismatch(runner, tmp_path):
    invoke(runner, "data", "build", "builtin:sigils64", "-o", tmp_path / "s.h5", "-q")
    r = invoke(runner, "train", *TINY, "--data", tmp_path / "s.h5", ok=False)
    assert "does not work with codec 'binary'" in r.output and "takes: hsv" in r.output


def test_empty_split_and_missing_codec(runner, tmp_path, emoji):
    np.savez(tmp_path / "two.npz", images=emoji[:2])
    r = invoke(runner, "train", *TINY, "--data", tmp_path / "two.npz", ok=False)
    assert "give --codec" in r.output
    invoke(runner, "data", "build", tmp_path / "two.npz", "-c", "hsv322", "--size", "8", "-o", tmp_path / "t.h5", "-q")
    r = invoke(runner, "train", *TINY, "--data", tmp_path / "t.h5", "--set", "val_fraction=1.0", ok=False)
    assert "no training samples" in r.output


def test_bad_checkpoints(runner, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint")
    r = invoke(runner, "sample", tmp_path / "junk.pt", "-o", tmp_path / "x.png", ok=False)
    assert "junk.pt" in r.output and "not a torch checkpoint archive" in r.output
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    r = invoke(runner, "sample", tmp_path / "foreign.pt", "-o", tmp_path / "x.png", ok=False)
    assert "not an artforge checkpoint" in r.output
    torch.save({"obj": Path("x")}, tmp_path / "pickled.pt")  # needs unpickling an arbitrary object
    r = invoke(runner, "sample", tmp_path / "pickled.pt", "-o", tmp_path / "x.png", ok=False)
    assert "not a readable artforge checkpoint" in r.output
    r = invoke(runner, "sample", tmp_path / "nowhere", "-o", tmp_path / "x.png", ok=False)
    assert "no such run folder" in r.output
    # markers of the wrong type: a tensor compared with == was an internal error ("Boolean value of Tensor")
    marker = "artforge-checkpoint"
    for markers, says in (({"format": torch.zeros(2)}, "(no artforge format marker)"),
                          ({"format": marker, "version": torch.ones(3)}, "checkpoint version Tensor is not 1"),
                          ({"format": marker, "version": 1.0}, "checkpoint version 1.0 is not 1")):
        torch.save(markers, tmp_path / "marked.pt")
        r = invoke(runner, "sample", tmp_path / "marked.pt", "-o", tmp_path / "x.png", ok=False)
        assert r.output.strip().endswith(says) and "internal error" not in r.output, r.output


def test_sample_bad_options(runner, tiny_cache, tmp_path):
    run = tmp_path / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "1", "-o", run)
    assert "--temperature must be > 0" in invoke(runner, "sample", run, "-o", tmp_path / "x.png", "-t", "0",
                                                  ok=False).output
    assert "--top-p" in invoke(runner, "sample", run, "-o", tmp_path / "x.png", "--top-p", "1.5", ok=False).output
    assert "without labels" in invoke(runner, "sample", run, "-o", tmp_path / "x.png", "--label", "a=1",
                                      ok=False).output


def test_ddp_with_two_cpu_processes_matches_one(runner, tiny_cache, tmp_path):
    args = [*TINY, "--data", str(tiny_cache), "--steps", "6", "--eval-every", "3", "--set", "flip=false"]
    invoke(runner, "train", *args, "-o", tmp_path / "one")
    torchrun = Path(sys.executable).with_name("torchrun")
    failures = []
    for attempt in range(2):  # two processes talking over a local port: one retry, on a fresh port and folder
        two = tmp_path / f"two-{attempt}"
        out = subprocess.run([str(torchrun), "--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "artforge",
                              "train", *args, "-o", str(two)], capture_output=True, text=True,
                             env=subprocess_env(), timeout=300)
        if out.returncode == 0:
            break
        failures.append(f"attempt {attempt}: exit {out.returncode}\n{out.stderr[:2500]}\n...\n{out.stderr[-1500:]}")
    assert out.returncode == 0, "\n\n".join(failures)
    assert out.stdout.count("done at step 6") == 1  # only rank 0 speaks ...
    lines = (two / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if json.loads(x)["split"] == "val"] == [3, 6]  # ... and writes
    a, b = final_weights(tmp_path / "one"), final_weights(two)
    for k in a:  # two half-batches with averaged gradients = one whole batch, up to float rounding
        assert torch.allclose(a[k], b[k], atol=2e-5), k


def test_set_checks_choices_and_json_objects():
    """--set values are parsed by the config field's type: a Literal takes one of its choices, a
    dict a JSON object; anything else is a one-line error naming the key."""
    import typing
    from dataclasses import dataclass, field

    from artforge.errors import ArtforgeError
    from artforge.models import ArtModel, make_config, type_label

    @dataclass
    class Cfg:
        act: Literal["relu", "gelu"] = "relu"
        heads: Literal[4, 8] = 8
        extra: dict = field(default_factory=dict)

    class M(ArtModel):
        name = "choices"
        Config = Cfg

    config, _ = make_config(M, {"act": "gelu", "heads": "4", "extra": '{"a": 1}'})
    assert (config.act, config.heads, config.extra) == ("gelu", 4, {"a": 1})
    for key, value, says in (("act", "zzz", "one of relu, gelu"), ("heads", "5", "one of 4, 8"),
                             ("extra", "a=1", "a JSON object")):
        with pytest.raises(ArtforgeError, match=f"--set {key}={value}: expected {says}"):
            make_config(M, {key: value})
    assert type_label(typing.get_type_hints(Cfg)["act"]) == "Literal['relu', 'gelu']"


def test_a_checkpoint_save_cut_halfway_keeps_the_previous_checkpoints(runner, tiny_cache, tmp_path, monkeypatch):
    """A stop in the middle of writing last.pt (after half its bytes) leaves the earlier last.pt and
    best.pt whole and loadable, no partial file, and a run that --resume finishes."""
    import artforge.engine.checkpoint as checkpoint

    run = tmp_path / "run"
    real = torch.save
    calls = []

    def cut(state, path, *a, **kw):
        calls.append(path)
        if len(calls) == 3:  # last.pt and best.pt at step 2, then last.pt at step 4
            real(state, path, *a, **kw)
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt
        return real(state, path, *a, **kw)

    monkeypatch.setattr(checkpoint.torch, "save", cut)
    r = invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "6", "--eval-every", "2", "-o", run, ok=False)
    assert r.exit_code != 0 and len(calls) == 3
    monkeypatch.setattr(checkpoint.torch, "save", real)
    assert checkpoint.load_checkpoint(run / "last.pt")["step"] == 2
    assert checkpoint.load_checkpoint(run / "best.pt")["step"] == 2
    assert not [p.name for p in run.iterdir() if ".partial-" in p.name]
    invoke(runner, "train", "--resume", "--out", run, "-q")
    assert checkpoint.load_checkpoint(run / "last.pt")["step"] == 6
