"""Sampling from exported ONNX files with onnxruntime and numpy only (torch is never imported).

A manifest names a sampler, ``"package.module:function"``, called as
``function(sessions, manifest, n, rng, temperature=..., labels=..., **options) -> tokens``.
Two generic samplers live here; plugins bring their own for other model shapes.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from artforge.errors import ArtforgeError, BadInput, first_line
from artforge.sampling import check_code_temperature


def load_manifest(path: str | os.PathLike) -> tuple[dict, Path]:
    from artforge.fsutil import check_readable, check_readable_folder

    d = Path(path)
    check_readable_folder(d)
    m = d / "manifest.json" if d.is_dir() else d
    check_readable(m)
    try:
        manifest = json.loads(m.read_text())
    except FileNotFoundError:
        raise BadInput(m, "no ONNX manifest here (run `artforge export RUN --onnx` first)") from None
    except json.JSONDecodeError as exc:
        raise BadInput(m, f"invalid manifest JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "artforge-onnx":
        raise BadInput(m, "not an artforge ONNX manifest")
    for key, kind in (("modules", dict), ("codec", dict), ("info", dict)):
        if not isinstance(manifest.get(key), kind):
            raise BadInput(m, f"manifest has no {key!r} table; export the run again")
    if not all(isinstance(mod, dict) and isinstance(mod.get("file"), str) for mod in manifest["modules"].values()):
        raise BadInput(m, "manifest modules must each name a file; export the run again")
    return manifest, m.parent


def open_sessions(manifest: dict, folder: Path) -> dict[str, Any]:
    import onnxruntime as ort

    sessions = {}
    for name, mod in manifest["modules"].items():
        path = folder / mod["file"]
        if not path.is_file():
            raise BadInput(path, "missing ONNX file named in the manifest")
        try:  # the bytes, not the name: onnxruntime refuses names that are not UTF-8 (b'run\\xff')
            model = path.read_bytes()
        except OSError as exc:
            raise BadInput(path, f"cannot read: {exc.strerror or exc}") from None
        try:
            sessions[name] = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error classes: a damaged or foreign file
            raise BadInput(path, f"not a loadable ONNX model ({first_line(exc)})") from None
    return sessions


def sample_onnx(path: str | os.PathLike, n: int, seed: int = 0, temperature: float = 1.0,
                labels: np.ndarray | None = None, **options: Any) -> tuple[np.ndarray, dict]:
    """(tokens, codec config) sampled from an export folder."""
    manifest, folder = load_manifest(path)
    target = manifest.get("sampler")
    if not target:
        files = ", ".join(m["file"] for m in manifest["modules"].values())
        raise ArtforgeError(f"{folder}: model {manifest.get('model')!r} names no ONNX sampler, so `sample --onnx` "
                            f"cannot use it; the export ({files}, described in manifest.json) is for your own "
                            "onnxruntime code")
    if not isinstance(target, str):
        raise BadInput(folder / "manifest.json", f"'sampler' must be text ('package.module:function'), not {target!r}")
    module, _, func = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ArtforgeError(f"ONNX sampler {target!r} is not available ({exc}); install its plugin") from None
    extra = untaken(fn, options)
    if extra:  # the sampler's signature, not the export: exporting again would not help
        flags = " and ".join("--" + k.replace("_", "-") for k in extra)
        raise ArtforgeError(f"ONNX sampler {target!r} takes no {', '.join(extra)}, so {flags} cannot be used "
                            "with this export")
    rng = np.random.default_rng(seed)
    sessions = open_sessions(manifest, folder)
    try:
        tokens = fn(sessions, manifest, n, rng, temperature=temperature, labels=labels, **options)
    except ArtforgeError:
        raise
    except Exception as exc:  # the files and manifest disagree (shapes, inputs): the export, not a bug
        raise BadInput(folder, f"the exported modules do not run as the manifest describes them "
                               f"({type(exc).__name__}: {first_line(exc)}); export the run again") from None
    return np.asarray(tokens), manifest["codec"]


def untaken(fn: Any, names: Iterable[str]) -> list[str]:
    """The keyword ``names`` that ``fn`` has no parameter for (none when it takes ``**options``, or
    has no signature to read). Shared with ``models.check_call``, which holds torch models' methods to
    the same rule as ONNX samplers (this module stays torch-free)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return []
    taken = {p.name for p in params if p.kind != p.VAR_POSITIONAL}
    return [k for k in names if k not in taken]


def softmax_sample(logits: np.ndarray, rng: np.random.Generator, temperature: float, axis: int = -1) -> np.ndarray:
    """Categorical samples along ``axis`` (temperature 0 = argmax)."""
    if temperature <= 0:
        return logits.argmax(axis)
    z = np.moveaxis(logits.astype(np.float64), axis, -1) / temperature
    z -= z.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    u = rng.random(p.shape[:-1] + (1,))
    return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1)


def latent_decoder(sessions: dict, manifest: dict, n: int, rng: np.random.Generator, temperature: float = 1.0,
                   labels: np.ndarray | None = None, **options: Any) -> np.ndarray:
    """Generic VAE-style sampler: z ~ N(0, I) -> ``decoder`` -> per-cell categorical logits.

    The decoder's first output is (n, vocab, *token_shape) logits; ``info.latent_shape`` gives z.
    With ``info.latent`` = "categorical" the latent is one-hot rows instead (Gumbel VAEs). With
    ``info.temperature`` = "latent", temperature scales the Gaussian z instead of the cells' softmax.
    A decoder with a ``labels`` input gets ``labels``, or rows drawn from ``info.label_rows``
    (weighted by ``info.label_weights``) when none are given.
    """
    if options:  # cells are drawn from their own softmax or argmax: no vocabulary filters apply
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(options))
        raise ArtforgeError(f"model {manifest.get('model')!r} samples without {flags}; drop it")
    info = manifest["info"]
    shape = tuple(info["latent_shape"])
    if info.get("latent") == "categorical":
        k = shape[-1]
        idx = rng.integers(0, k, size=(n, *shape[:-1]))
        z = np.eye(k, dtype=np.float32)[idx]
    else:
        z = rng.standard_normal((n, *shape)).astype(np.float32)
        if info.get("temperature") == "latent":
            check_code_temperature(str(manifest.get("model")), temperature)
            z *= np.float32(temperature)
    sess = sessions["decoder"]
    feed = {"z": z}
    if any(i.name == "labels" for i in sess.get_inputs()):
        if labels is None:
            rows = info.get("label_rows")
            if not rows:
                raise ArtforgeError(f"model {manifest.get('model')!r} is conditional; pass --label NAME=VALUE")
            w = np.asarray(info.get("label_weights") or [1.0] * len(rows), np.float64)
            labels = np.asarray(rows, np.float32)[rng.choice(len(rows), size=n, p=w / w.sum())]
        feed["labels"] = np.broadcast_to(labels.astype(np.float32), (n, labels.shape[-1])).copy()
    elif labels is not None:
        raise ArtforgeError(f"model {manifest.get('model')!r} is unconditional; drop --label")
    logits = sess.run(None, feed)[0]
    return softmax_sample(logits, rng, temperature if info.get("sample_cells", False) else 0.0, axis=1)
