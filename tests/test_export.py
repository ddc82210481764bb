"""ONNX export: checked files, parity at another batch size, and sampling without torch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from artforge.plugins import get_plugin_manager

import toy_plugin
from conftest import TINY_HSV as TINY
from conftest import invoke, subprocess_env


@pytest.fixture(scope="module")
def exported(tiny_cache, tmp_path_factory):
    from click.testing import CliRunner

    from artforge.plugins import reset_plugin_manager

    reset_plugin_manager()
    runner = CliRunner()
    run = tmp_path_factory.mktemp("export") / "run"
    invoke(runner, "train", *TINY, "--data", tiny_cache, "--steps", "3", "-o", run)
    out = invoke(runner, "export", run, "--onnx").output
    return run, out


def test_export_writes_checked_single_file_models_and_a_manifest(exported):
    run, out = exported
    files = sorted(p.name for p in (run / "onnx").iterdir())
    assert files == ["logits.onnx", "manifest.json", "step.onnx"]  # no external-data sidecars
    m = json.loads((run / "onnx" / "manifest.json").read_text())
    assert m["model"] == "hsv-transformer" and m["codec"]["spec"] == "hsv322"
    assert m["sampler"] == "artforge_hsv.onnx_sampler:sample"
    for name, mod in m["modules"].items():
        assert mod["max_abs_diff"] <= 1e-4 and mod["checked_batch"] != mod["traced_batch"]
        onnx.checker.check_model(onnx.load(str(run / "onnx" / mod["file"])))
        assert f"{name}.onnx" in out
    assert m["modules"]["logits"]["dynamic_axes"]["tokens"] == {"0": "batch", "1": "length"}


def test_logits_model_has_dynamic_batch_and_length(exported):
    import onnxruntime as ort
    import torch

    from artforge.engine.run import load_run

    run, _ = exported
    sess = ort.InferenceSession(str(run / "onnx" / "logits.onnx"))
    model = load_run(run).model
    for b, t in ((1, 1), (4, 64), (7, 13)):
        x = np.random.default_rng(b).integers(0, 129, (b, t)).astype(np.int64)
        got = sess.run(None, {"tokens": x})[0]
        with torch.no_grad():
            want = model.logits(torch.from_numpy(x)).numpy()
        assert got.shape == (b, t, 129) and np.abs(got - want).max() < 1e-4


def test_onnx_sampling_runs_without_torch(exported, tmp_path):
    run, _ = exported
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now fails\n"
        "from artforge.cli import main\n"
        f"sys.argv = ['artforge', 'sample', '--onnx', {str(run / 'onnx')!r}, '-n', '3', '-o', "
        f"{str(tmp_path / 'g.png')!r}, '--tokens', {str(tmp_path / 't.npz')!r}, '--seed', '1']\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    tokens = np.load(tmp_path / "t.npz")["tokens"]
    assert tokens.shape == (3, 8, 8) and tokens.max() < 129
    assert (tmp_path / "g.png").is_file()


def test_onnx_and_torch_sampling_write_tokens_of_one_dtype(exported, runner, tmp_path):
    """`sample --tokens` wrote the codec's dtype (uint8 for hsv322) from a run, int64 from --onnx."""
    run, _ = exported
    invoke(runner, "sample", run, "-n", "2", "-o", tmp_path / "t.png", "--tokens", tmp_path / "torch.npz")
    invoke(runner, "sample", "--onnx", run / "onnx", "-n", "2", "-o", tmp_path / "o.png", "--tokens",
           tmp_path / "onnx.npz")
    dtypes = [np.load(tmp_path / f"{name}.npz")["tokens"].dtype for name in ("torch", "onnx")]
    assert dtypes == [np.dtype(np.uint8)] * 2


def test_export_and_onnx_sampling_in_a_folder_whose_name_is_not_utf8(exported, runner, tmp_path):
    """onnxruntime takes only file names that encode to UTF-8: a run folder named b'run\\xff' (legal on
    Linux) made export and `sample --onnx` an internal error (TypeError); sessions load the bytes."""
    import os
    import shutil

    run = tmp_path / os.fsdecode(b"run\xff")
    shutil.copytree(exported[0], run, ignore=shutil.ignore_patterns("onnx"))
    assert "exported" in invoke(runner, "export", run, "--onnx").output
    invoke(runner, "sample", "--onnx", run / "onnx", "-n", "2", "-o", tmp_path / "o.png")
    assert (tmp_path / "o.png").is_file()


def test_onnx_sampling_matches_torch_greedy(exported, runner, tmp_path):
    """The KV-cache step model in onnxruntime generates what torch generates (greedy decoding)."""
    import torch

    from artforge.engine.run import load_run
    from artforge.onnx_runtime import sample_onnx

    run, _ = exported
    toks, _ = sample_onnx(run / "onnx", 4, seed=0, temperature=0.0)
    with torch.no_grad():
        want = load_run(run).model.generate(4, temperature=0.0).numpy()
    assert np.array_equal(toks, want)


def test_generic_latent_decoder_sampler(runner, tiny_cache, tmp_path):
    assert get_plugin_manager().register(toy_plugin, "toy")
    run = tmp_path / "run"
    invoke(runner, "train", "--plugin", "unigram", "--data", tiny_cache, "--steps", "3", "-o", run, "-q")
    invoke(runner, "export", run, "--onnx", "-o", tmp_path / "onnx")
    invoke(runner, "sample", "--onnx", tmp_path / "onnx", "-n", "5", "-o", tmp_path / "g.png",
           "--tokens", tmp_path / "t.npz")
    assert np.load(tmp_path / "t.npz")["tokens"].shape == (5, 8, 8)
    r = invoke(runner, "sample", "--onnx", tmp_path / "onnx", "--top-k", "3", "-o", tmp_path / "k.png", ok=False)
    assert "samples without --top-k" in r.output and not (tmp_path / "k.png").exists()


def test_a_plugins_onnx_mistakes_fail_the_export_naming_the_part(runner, tiny_cache, tmp_path, monkeypatch):
    """What `sample --onnx` would trip over later (a sampler that does not import, latent_decoder
    without its latent_shape, dynamic_axes naming no input) fails the export; without check_inputs
    the comparison still runs at a batch the trace did not see."""
    assert get_plugin_manager().register(toy_plugin, "toy")
    run = tmp_path / "run"
    invoke(runner, "train", "--plugin", "unigram", "--data", tiny_cache, "--steps", "2", "-o", run, "-q")
    cls = toy_plugin.Unigram
    real_modules = cls.onnx_modules

    def modules(**change):
        return lambda self: [dataclasses.replace(m, **change) for m in real_modules(self)]

    cases = [
        ({"onnx_sampler": "toy_plugin:nope"}, "onnx_sampler 'toy_plugin:nope' cannot be loaded"),
        ({"onnx_manifest": lambda self: {}}, "latent_decoder needs onnx_manifest()['latent_shape']"),
        ({"onnx_modules": modules(dynamic_axes={"zz": {0: "batch"}})}, "dynamic_axes names 'zz'"),
    ]
    for attrs, says in cases:
        with monkeypatch.context() as m:
            for k, v in attrs.items():
                m.setattr(cls, k, v)
            r = invoke(runner, "export", run, "--onnx", "-o", tmp_path / "bad", ok=False)
            assert "model 'unigram'" in r.output and says in r.output, r.output
    assert not (tmp_path / "bad" / "manifest.json").exists()
    monkeypatch.setattr(cls, "onnx_modules", modules(check_inputs=None))
    r = invoke(runner, "export", run, "--onnx", "-o", tmp_path / "ok")
    assert "at batch 6 (traced at 5)" in r.output


def test_export_bad_input(runner, tmp_path):
    assert "choose a format" in invoke(runner, "export", tmp_path, ok=False).output
    assert "no such run folder" in invoke(runner, "export", tmp_path / "x", "--onnx", ok=False).output
    assert "no ONNX manifest" in invoke(runner, "sample", "--onnx", tmp_path, "-o", tmp_path / "g.png",
                                        ok=False).output


def test_a_stopped_or_failed_export_keeps_the_previous_one(exported, runner, tmp_path, monkeypatch):
    """Files are built in a staging folder and moved in with the manifest last: an export that is
    stopped (Ctrl-C inside the exporter, which wraps it in its own error) or fails half-way leaves
    the old export whole, not a mix of two runs' files."""
    import shutil

    import artforge.engine.export as export

    run, _ = exported
    out = tmp_path / "onnx"
    shutil.copytree(run / "onnx", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = export.torch.onnx.export

    def stopped_at_step(module, inputs, path, **kw):
        if ".step.onnx" in path:  # (atomic_path hands the exporter a temporary name)
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as exc:
                raise RuntimeError("Failed to export the model with torch.export") from exc
        return real(module, inputs, path, **kw)

    monkeypatch.setattr(export.torch.onnx, "export", stopped_at_step)
    with pytest.raises(KeyboardInterrupt):
        export.export_run(run, out, echo=lambda _: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder either

    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # every parity check now fails
    r = invoke(runner, "export", run, "--onnx", "-o", out, ok=False)
    assert "onnxruntime differs from torch" in r.output and str(out / "logits.onnx") in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before



def test_ctrl_c_while_the_new_files_move_in_finishes_the_move(exported, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) landing between the renames that move a new export in used to stop there:
    the old manifest gone, one file new and the other old, so neither export was left. The move now
    finishes, then the command stops."""
    import os
    import shutil
    import signal

    import artforge.engine.export as export

    run, _ = exported
    out = tmp_path / "onnx"
    shutil.copytree(run / "onnx", out)
    for name in ("logits.onnx", "step.onnx"):  # an older export: other bytes than the one made below
        model = onnx.load(str(out / name))
        onnx.helper.set_model_props(model, {"older": "yes"})
        onnx.save(model, str(out / name))
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    real = os.replace
    moved = []

    def replace(src, dst, *a, **kw):
        real(src, dst, *a, **kw)
        if str(dst).endswith(".onnx") and os.path.dirname(dst) == str(out):
            moved.append(dst)
            if len(moved) == 1:  # one Ctrl-C, after the first file (a second one stops at once)
                signal.raise_signal(signal.SIGINT)  # handled as the rename returns, as a real one is

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        export.export_run(run, out, echo=lambda _: None)
    monkeypatch.setattr(os, "replace", real)
    now = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(now) == ["logits.onnx", "manifest.json", "step.onnx"]  # a manifest, and no staging folder
    assert now["logits.onnx"] != old["logits.onnx"] and now["step.onnx"] != old["step.onnx"]  # both new
    m = json.loads(now["manifest.json"])  # and the manifest that describes them
    assert all(len(now[mod["file"]]) == mod["bytes"] for mod in m["modules"].values())


PLAIN_SAMPLER = '''
from artforge.onnx_runtime import latent_decoder


def sample(sessions, manifest, n, rng, temperature=1.0, labels=None):
    return latent_decoder(sessions, manifest, n, rng, temperature, labels)
'''


def test_an_onnx_sampler_without_options_refuses_top_k_in_one_line(runner, tiny_cache, tmp_path, monkeypatch):
    """A plugin's sampler written without **options works until --top-k is given, which is then
    refused naming the sampler, as for a torch sample(); it used to be blamed on the export ("the
    exported modules do not run as the manifest describes them ...; export the run again")."""
    assert get_plugin_manager().register(toy_plugin, "toy")
    run, onnx = tmp_path / "run", tmp_path / "onnx"
    invoke(runner, "train", "--plugin", "unigram", "--data", tiny_cache, "--steps", "2", "-o", run, "-q")
    invoke(runner, "export", run, "--onnx", "-o", onnx)
    (tmp_path / "plain_sampler.py").write_text(PLAIN_SAMPLER)
    monkeypatch.syspath_prepend(str(tmp_path))
    manifest = json.loads((onnx / "manifest.json").read_text())
    (onnx / "manifest.json").write_text(json.dumps({**manifest, "sampler": "plain_sampler:sample"}))
    invoke(runner, "sample", "--onnx", onnx, "-n", "2", "-o", tmp_path / "s.png")
    r = invoke(runner, "sample", "--onnx", onnx, "--top-k", "3", "-o", tmp_path / "k.png", ok=False)
    assert r.output.strip() == ("Error: ONNX sampler 'plain_sampler:sample' takes no top_k, so --top-k cannot be "
                                "used with this export"), r.output
    assert not (tmp_path / "k.png").exists()
