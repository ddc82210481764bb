"""The same jobs on CUDA: bf16 training (compiled too), sampling, evaluation, export, KV-cache decoding.

Skipped without CUDA; CI has none, so these run on a lent GPU machine (`pytest -m gpu`).
"""

from __future__ import annotations

import json

import pytest
import torch

from artforge.engine.trainer import PEAK_FLOPS
from artforge.models import DataInfo
from artforge_hsv.model import HSVTransformer, HSVTransformerConfig

from conftest import invoke

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _trained(runner, tmp_path, args, name):
    run = tmp_path / name
    invoke(runner, "train", *args, "--steps", "12", "--eval-every", "6", "--device", "cuda", "-q", "-o", run)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(m["loss"] == m["loss"] for m in metrics if "loss" in m)  # no NaN
    return run


@pytest.mark.parametrize("compile_", [False, True])
def test_hsv_transformer_trains_samples_and_exports_on_cuda(runner, tmp_path, tiny_cache, compile_):
    args = ["--plugin", "hsv-transformer", "--data", tiny_cache, "--set", "preset=tiny", "-b", "16"]
    run = _trained(runner, tmp_path, args + (["--compile"] if compile_ else []), "hsv")
    train = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    known = any(k in torch.cuda.get_device_name() for k in PEAK_FLOPS)  # MFU needs the peak FLOP/s
    assert any("mfu" in m for m in train) == known
    invoke(runner, "sample", run, "-n", "8", "-o", tmp_path / "s.png", "--device", "cuda")
    invoke(runner, "eval", run, "--device", "cuda")
    assert (run / "eval.json").exists()
    invoke(runner, "export", run, "--onnx")  # parity with onnxruntime is checked inside export


def test_palette_and_ascii_models_train_on_cuda(runner, tmp_path):
    pal = tmp_path / "tiles.h5"
    invoke(runner, "data", "build", "builtin:tiles32", "-c", "palette:auto/16", "--size", "16", "-o", pal, "-q")
    run = _trained(runner, tmp_path, ["--plugin", "palette-conv-vae", "--data", pal, "--set", "preset=tiny",
                                      "-b", "16"], "pal")
    invoke(runner, "sample", run, "-n", "8", "-o", tmp_path / "p.png", "--device", "cuda")
    asc = tmp_path / "ascii.h5"
    invoke(runner, "data", "build", "builtin:ascii-art", "-c", "ascii:64x64", "-o", asc, "-q")
    run = _trained(runner, tmp_path, ["--plugin", "ascii-vae", "--data", asc, "--set", "preset=tiny",
                                      "-b", "16"], "ascii")
    invoke(runner, "eval", run, "--device", "cuda")


def test_kv_cache_matches_recomputing_on_cuda():
    torch.manual_seed(0)
    m = HSVTransformer(HSVTransformerConfig(n_layer=2, n_head=2, n_embd=64, dropout=0.0),
                       DataInfo({"codec": "hsv"}, 257, (8, 8))).cuda().eval()
    g = {"dtype": torch.float32}  # the default on CUDA is bf16, where rounding can flip near-ties
    a = m.generate(6, generator=torch.Generator("cuda").manual_seed(3), use_cache=True, static=False, **g)
    b = m.generate(6, generator=torch.Generator("cuda").manual_seed(3), use_cache=False, **g)
    assert a.device.type == "cuda" and a.shape == (6, 8, 8)
    # float32 on the GPU: the two paths may differ in the last bits; sampled tokens almost never do
    assert (a == b).float().mean() > 0.99


def test_completion_in_bf16_keeps_the_prompt_on_cuda():
    """The prefill block (a masked attention over the prompt) and bf16 decoding, as `complete` runs them."""
    torch.manual_seed(0)
    m = HSVTransformer(HSVTransformerConfig(n_layer=2, n_head=2, n_embd=64, dropout=0.0),
                       DataInfo({"codec": "hsv"}, 257, (8, 8))).cuda().eval()
    images = torch.randint(0, 257, (3, 8, 8), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = m.complete(images, keep_rows=3, n=2, generator=torch.Generator("cuda").manual_seed(0))
    assert out.shape == (3, 2, 8, 8)
    assert torch.equal(out[:, :, :3], images[:, None, :3].expand(-1, 2, -1, -1))
    assert int(out.max()) < 257


def test_cuda_graph_decoding_matches_the_growing_cache():
    torch.manual_seed(0)
    m = HSVTransformer(HSVTransformerConfig(n_layer=2, n_head=2, n_embd=64, dropout=0.0),
                       DataInfo({"codec": "hsv"}, 257, (8, 8))).cuda().eval()
    prompt = torch.randint(0, 257, (6, 16), device="cuda")
    f32 = {"prompt": prompt, "dtype": torch.float32}
    a = m.generate(6, generator=torch.Generator("cuda").manual_seed(5), static=False, **f32)
    for bucket in (128, 16):  # one graph over the whole cache; four graphs, one per length bucket
        b = m.generate(6, generator=torch.Generator("cuda").manual_seed(5), bucket=bucket, **f32)  # static by default
        # float32: other kernels (a masked attention) may differ in the last bits; draws almost never do
        assert (a == b).float().mean() > 0.97
    c = m.generate(6, prompt=prompt, generator=torch.Generator("cuda").manual_seed(5), static=True, bucket=16)  # bf16
    assert torch.equal(c.view(6, -1)[:, :16], prompt) and int(c.max()) < 257
    assert not torch.equal(c[0], c[1])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_cuda_graphs_on_a_gpu_that_is_not_the_current_one():
    """A model on cuda:1 with cuda:0 current (`artforge sample --device cuda:1` sets no device): the
    graphs must be captured on cuda:1. Captured on the current GPU's stream they would record none of
    the step's kernels, and the replays would leave the tokens unwritten. A capture on cuda:0 comes
    first, in this test, whatever ran before it: torch.cuda.graph's default capture stream is made on
    the GPU current at the process's first capture, and would take the cuda:1 capture back to cuda:0."""
    torch.manual_seed(0)
    info = DataInfo({"codec": "hsv"}, 257, (8, 8))
    m0 = HSVTransformer(HSVTransformerConfig(n_layer=1, n_head=2, n_embd=64, dropout=0.0), info).to("cuda:0").eval()
    m0.generate(2, generator=torch.Generator("cuda:0").manual_seed(0), static=True, bucket=16)
    m = HSVTransformer(HSVTransformerConfig(n_layer=2, n_head=2, n_embd=64, dropout=0.0), info).to("cuda:1").eval()
    f32 = {"dtype": torch.float32}
    a = m.generate(6, generator=torch.Generator("cuda:1").manual_seed(5), static=False, **f32)
    b = m.generate(6, generator=torch.Generator("cuda:1").manual_seed(5), static=True, bucket=16, **f32)
    assert torch.cuda.current_device() == 0 and b.device == torch.device("cuda:1")
    assert (a == b).float().mean() > 0.97


def test_cuda_graphs_replay_what_the_steps_compute(monkeypatch):
    """The captured steps against the same steps run op by op (no capture): the same kernels, the same tokens."""
    from artforge_hsv.decoding import StaticDecoder

    torch.manual_seed(0)
    m = HSVTransformer(HSVTransformerConfig(n_layer=2, n_head=2, n_embd=64, dropout=0.0),
                       DataInfo({"codec": "hsv"}, 257, (8, 8))).cuda().eval()
    runs, replays = [], []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda self: (replays.append(self), replay(self))[1])
    for capture in (True, False):
        if not capture:
            monkeypatch.setattr(StaticDecoder, "_capture", lambda self, buckets: None)
        for kw in ({"temperature": 1.0, "top_p": 0.9}, {"temperature": 0.8, "top_k": 50}):
            runs.append(m.generate(8, generator=torch.Generator("cuda").manual_seed(1), static=True, bucket=16, **kw))
        if capture:  # every step after the prefill was a replay, of one graph per 16-slot bucket
            assert len(replays) == 2 * 63 and len({id(g) for g in replays}) == 2 * 4
    for graph, eager in zip(runs[:2], runs[2:], strict=True):
        assert (graph == eager).float().mean() > 0.99


def test_cuda_graphs_filter_the_hsv544_vocabulary(monkeypatch):
    """top-k and top-p inside the graphs at hsv544's 8,193 tokens: above 4,096 entries a row's sort
    leaves the in-block bitonic kernel for CUB's radix sorts, which the 257-token tests never reach."""
    from artforge_hsv.decoding import StaticDecoder

    torch.manual_seed(0)
    m = HSVTransformer(HSVTransformerConfig(n_layer=1, n_head=2, n_embd=64, dropout=0.0),
                       DataInfo({"codec": "hsv"}, 8193, (4, 8))).cuda().eval()
    kw = {"temperature": 1.0, "top_k": 200, "top_p": 0.9, "static": True, "bucket": 16}
    graph = m.generate(4, generator=torch.Generator("cuda").manual_seed(1), **kw)
    monkeypatch.setattr(StaticDecoder, "_capture", lambda self, buckets: None)
    eager = m.generate(4, generator=torch.Generator("cuda").manual_seed(1), **kw)
    assert int(graph.max()) < 8193 and (graph == eager).float().mean() > 0.97


def test_compiled_cuda_graphs_match_the_eager_steps():
    """torch.compile'd steps, captured per length bucket, against the same steps uncompiled."""
    torch.manual_seed(0)
    m = HSVTransformer(HSVTransformerConfig(n_layer=2, n_head=2, n_embd=64, dropout=0.0),
                       DataInfo({"codec": "hsv"}, 257, (8, 8))).cuda().eval()
    prompt = torch.randint(0, 257, (6, 5), device="cuda")
    f32 = {"prompt": prompt, "dtype": torch.float32, "bucket": 16, "temperature": 0.9, "top_k": 100}
    a = m.generate(6, generator=torch.Generator("cuda").manual_seed(2), static=True, **f32)
    b = m.generate(6, generator=torch.Generator("cuda").manual_seed(2), compile=True, **f32)
    assert torch.equal(b.view(6, -1)[:, :5], prompt)
    assert (a == b).float().mean() > 0.97  # fused kernels may differ in the last bits; draws almost never do
    c = m.generate(6, generator=torch.Generator("cuda").manual_seed(2), compile=True, bucket=16)  # bf16
    assert int(c.max()) < 257 and not torch.equal(c[0], c[1])
