"""Sampling hsv-transformer exports with onnxruntime and numpy only (no torch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from artforge.onnx_runtime import softmax_sample


def _filter(logits: np.ndarray, top_k: int | None, top_p: float | None) -> np.ndarray:
    logits = logits.astype(np.float64)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.sort(logits, -1)[:, -top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-logits, -1)
        sl = np.take_along_axis(logits, order, -1)
        p = np.exp(sl - sl.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        drop = np.cumsum(p, -1) - p > top_p
        sl = np.where(drop, -np.inf, sl)
        out = np.full_like(logits, -np.inf)
        np.put_along_axis(out, order, sl, -1)
        logits = out
    return logits


def sample(sessions: dict, manifest: dict, n: int, rng: np.random.Generator, temperature: float = 1.0,
           labels=None, top_k: int | None = None, top_p: float | None = None, **_: Any) -> np.ndarray:
    """Generate (n, H, W) tokens with the exported ``step`` module and its explicit KV cache."""
    info = manifest["info"]
    H, W = info["height"], info["width"]
    T = H * W
    step = sessions["step"]
    k = np.zeros((info["n_layer"], n, info["n_head"], T, info["head_dim"]), np.float32)
    v = np.zeros_like(k)
    token = np.full((n, 1), info["start_token"], np.int64)
    out = np.zeros((n, T), np.int64)
    for pos in range(T):
        logits, k, v = step.run(None, {"token": token, "pos": np.array(pos, np.int64), "k_cache": k, "v_cache": v})
        out[:, pos] = softmax_sample(_filter(logits, top_k, top_p), rng, temperature)
        token = out[:, pos : pos + 1]
    return out.reshape(n, H, W)
