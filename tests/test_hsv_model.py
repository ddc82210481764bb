"""hsv-transformer: KV-cache decoding, sampling filters, completion, evaluation figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from artforge.errors import ArtforgeError
from artforge.models import DataInfo
from artforge.plugins import get_plugin_manager
from artforge_hsv.model import HSVTransformer, HSVTransformerConfig, filter_logits

import toy_plugin
from conftest import TINY_HSV as TINY
from conftest import invoke


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = HSVTransformer(HSVTransformerConfig(n_layer=2, n_head=2, n_embd=32, dropout=0.0),
                       DataInfo({"codec": "hsv"}, 129, (6, 5)))
    with torch.no_grad():  # a random but not-too-flat distribution
        for p in m.parameters():
            p.mul_(2)
    return m.eval()


def test_kv_cache_gives_the_same_tokens_as_recomputing(model):
    for temperature, top_k, top_p in ((1.0, None, None), (0.7, 20, None), (1.3, None, 0.9)):
        a = model.generate(5, generator=torch.Generator().manual_seed(1), temperature=temperature, top_k=top_k,
                           top_p=top_p)
        b = model.generate(5, generator=torch.Generator().manual_seed(1), temperature=temperature, top_k=top_k,
                           top_p=top_p, use_cache=False)
        assert torch.equal(a, b)
        assert a.shape == (5, 6, 5)


def test_fixed_shape_steps_give_the_same_tokens(model):
    """The decoding a CUDA graph replays (off CUDA run op by op): same draws as the growing cache,
    whether attention reads the whole cache or the cache in length buckets."""
    cases = ((1.0, None, None, None), (0.7, 20, None, torch.randint(0, 129, (5, 12))),
             (1.2, None, 0.8, torch.randint(0, 129, (5, 3))), (0.0, None, None, None))
    for temperature, top_k, top_p, prompt in cases:
        kw = {"prompt": prompt, "temperature": temperature, "top_k": top_k, "top_p": top_p}
        a = model.generate(5, generator=torch.Generator().manual_seed(2), **kw)
        for bucket in (30, 8, 7, 1):
            b = model.generate(5, generator=torch.Generator().manual_seed(2), static=True, bucket=bucket, **kw)
            assert torch.equal(a, b), (temperature, bucket)
    tokens = torch.randint(0, 129, (3, 30))
    inputs = model._inputs(tokens)
    full = model.logits(inputs)
    cache = model._new_cache(3, "cpu", torch.float32)
    model._step(inputs[:, :1], cache, 0)
    pos = torch.zeros(1, dtype=torch.long)
    for i in range(1, 30):
        pos.fill_(i)
        for length in (i + 1, 30):  # just the filled slots, or all with the unfilled ones masked
            got = model._static_step(inputs[:, i : i + 1], cache, pos, length)
            assert torch.allclose(got, full[:, i], atol=1e-4, rtol=1e-4)


def test_compiled_steps_give_the_same_tokens(model):
    """``compile=True`` runs each fixed-shape step through torch.compile: same draws as the growing
    cache, across length buckets (one compilation serves them all) and with a prompt."""
    prompt = torch.randint(0, 129, (5, 4))
    for temperature, top_k, top_p in ((1.0, None, None), (0.8, 30, 0.9)):
        kw = {"prompt": prompt, "temperature": temperature, "top_k": top_k, "top_p": top_p}
        a = model.generate(5, generator=torch.Generator().manual_seed(3), **kw)
        b = model.generate(5, generator=torch.Generator().manual_seed(3), compile=True, bucket=8, **kw)
        assert torch.equal(a, b), temperature
    with pytest.raises(ArtforgeError, match="compile"):
        model.generate(1, compile=True, use_cache=False)


def test_bf16_decoding_casts_the_weights_once(model):
    """bf16 decoding runs a copy whose matrix weights are bf16 (no per-step casts); the model stays fp32."""
    prompt = torch.randint(0, 129, (4, 7))
    out = model.generate(4, prompt=prompt, generator=torch.Generator().manual_seed(0), dtype=torch.bfloat16,
                         static=True, bucket=8)
    assert torch.equal(out.view(4, -1)[:, :7], prompt) and int(out.max()) < 129
    assert model.blocks[0].attn.qkv.weight.dtype == torch.float32 and model._head_weight is None
    copy = model._decoding_copy(torch.bfloat16)
    assert copy.blocks[0].mlp[0].weight.dtype == torch.bfloat16 and copy._head_weight.dtype == torch.bfloat16
    assert copy.ln_f.weight.dtype == torch.float32 and copy.tok_emb.weight.dtype == torch.float32
    x = torch.randint(0, 129, (2, 30))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the copy computes what autocast over the model does
        assert torch.equal(copy.logits(model._inputs(x)), model.logits(model._inputs(x)))
    with pytest.raises(ArtforgeError, match="bucket"):
        model.generate(1, bucket=0)


def test_cached_logits_equal_full_logits(model):
    tokens = torch.randint(0, 129, (3, 30))
    inputs = model._inputs(tokens)
    full = model.logits(inputs)
    cache = model._new_cache(3, "cpu", torch.float32)
    first = model._step(inputs[:, :7], cache, 0)  # a prefilled block ...
    assert torch.allclose(first, full[:, 6], atol=1e-4, rtol=1e-4)
    for pos in range(7, 30):  # ... then one token at a time
        assert torch.allclose(model._step(inputs[:, pos : pos + 1], cache, pos), full[:, pos], atol=1e-4, rtol=1e-4)


def test_completion_keeps_the_prompt_rows(model):
    tokens = torch.randint(0, 129, (2, 6, 5))
    out = model.complete(tokens, keep_rows=3, n=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 4, 6, 5)
    assert torch.equal(out[:, :, :3], tokens[:, None, :3].expand(2, 4, 3, 5))
    assert not torch.equal(out[0, 0, 3:], out[0, 1, 3:])  # the rest is sampled


def test_many_images_are_decoded_in_chunks_on_a_cpu(model, monkeypatch):
    """Sequences go through generate in chunks (bounded memory): greedy decoding is the same as in
    one go, prompts are kept, and a seed still gives one result."""
    import artforge_hsv.model as hsv

    prompt = torch.randint(0, 129, (7, 9))
    whole = model.generate(7, prompt=prompt, temperature=0.0)
    monkeypatch.setattr(hsv, "CPU_CHUNK", 3)
    chunked = model.generate(7, prompt=prompt, temperature=0.0)
    assert torch.equal(whole, chunked)
    drawn = [model.generate(7, prompt=prompt, generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    assert torch.equal(drawn[0], drawn[1]) and torch.equal(drawn[0].view(7, -1)[:, :9], prompt)
    calls = []
    real = hsv.HSVTransformer._decode
    monkeypatch.setattr(hsv.HSVTransformer, "_decode",
                        lambda self, out, *a: (calls.append(len(out)), real(self, out, *a)))
    model.generate(7, temperature=0.0)
    assert calls == [3, 3, 1]


def test_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    p = logits.softmax(-1)[0]  # 0.64, 0.24, 0.09, 0.03
    kept = ~torch.isinf(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]] and p[0] < 0.7


def test_flops_count(model):
    n = sum(p.numel() for p in model.parameters()) - model.row_emb.weight.numel() - model.col_emb.weight.numel()
    assert model.flops_per_token() == 6 * n + 12 * 2 * 32 * 30


@pytest.fixture(scope="module")
def run(tiny_cache, tmp_path_factory):
    from click.testing import CliRunner

    from artforge.plugins import reset_plugin_manager

    reset_plugin_manager()
    d = tmp_path_factory.mktemp("hsvrun") / "run"
    invoke(CliRunner(), "train", *TINY, "--data", tiny_cache, "--steps", "3", "-o", d)
    return d


def test_complete_command(runner, run, emoji, tmp_path):
    Image.fromarray(emoji[0], "RGBA").save(tmp_path / "big.png")  # 32x32: resized to the model's 8x8
    r = invoke(runner, "complete", run, tmp_path / "big.png", "--keep-rows", "4", "-n", "3",
               "-o", tmp_path / "c.png")
    assert "resized" in r.output and "1 images x 3 completions" in r.output
    w, h = Image.open(tmp_path / "c.png").size
    assert w > 4 * h  # original | prompt | 3 completions


def test_complete_bad_input(runner, run, emoji, tmp_path):
    Image.fromarray(emoji[0], "RGBA").save(tmp_path / "e.png")
    base = ["complete", run, tmp_path / "e.png", "-o", tmp_path / "c.png"]
    assert "between 0 and 8" in invoke(runner, *base, "--keep-rows", "9", ok=False).output
    assert "between 0 and 8" in invoke(runner, *base, "--keep-rows", "-1", ok=False).output
    assert "--temperature must be > 0" in invoke(runner, *base, "-k", "2", "-t", "0", ok=False).output
    assert "--top-p" in invoke(runner, *base, "-k", "2", "--top-p", "0", ok=False).output
    (tmp_path / "bad.png").write_text("x")
    assert "no usable images" in invoke(runner, "complete", run, tmp_path / "bad.png", "-k", "2", "-o",
                                        tmp_path / "c.png", ok=False).output


def test_complete_rejects_another_models_run(runner, tiny_cache, tmp_path, emoji):
    assert get_plugin_manager().register(toy_plugin, "toy")
    invoke(runner, "train", "--plugin", "unigram", "--data", tiny_cache, "--steps", "2", "-o", tmp_path / "u", "-q")
    Image.fromarray(emoji[0], "RGBA").save(tmp_path / "e.png")
    r = invoke(runner, "complete", tmp_path / "u", tmp_path / "e.png", "-k", "2", "-o", tmp_path / "c.png", ok=False)
    assert "is a 'unigram' run, not 'hsv-transformer'" in r.output


def test_eval_figures_are_consistent(run, runner):
    import json

    res = json.loads(invoke(runner, "eval", run, "--json").stdout)["figures"]
    assert res["bits_per_pixel"] == pytest.approx(res["loss"] / np.log(2))
    assert 0 <= res["next_token_accuracy"] <= 1
    assert res["ratio_to_webp"] == pytest.approx(res["bits_per_pixel"] / res["webp_lossless_bits_per_pixel"])
    assert res["png_bits_per_pixel"] > 0


def test_pick_draws_from_the_softmax_and_never_a_filtered_token():
    from artforge_hsv.model import pick

    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0, 0.5]]).expand(40_000, -1)
    tokens = pick(logits, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=5).float() / len(tokens)
    assert torch.allclose(freq, logits[0].softmax(-1), atol=0.01)
    kept = pick(logits, 0.7, torch.Generator().manual_seed(1), top_k=2)
    assert set(kept.tolist()) == {1, 2}
