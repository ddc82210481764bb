"""ONNX export: each inference sub-module to its own checked, parity-tested .onnx file."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artforge import __version__
from artforge.errors import ArtforgeError, first_line, shown
from artforge.fsutil import atomic_path, atomic_write_text, output_folder, partial_prefix
from artforge.signals import deferred_stop

MANIFEST = "manifest.json"
TOLERANCE = 1e-4


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def dynamic_shapes(spec) -> tuple:
    """``dynamic_axes`` names -> torch.export Dims; inputs sharing an axis name share one Dim."""
    from torch.export import Dim

    dims: dict[str, Any] = {}
    shapes = []
    for name in spec.input_names:
        axes = spec.dynamic_axes.get(name)
        if not axes:
            shapes.append(None)
            continue
        shapes.append({ax: dims.setdefault(label, Dim(label, min=1)) for ax, label in axes.items()})
    return tuple(shapes)


@contextlib.contextmanager
def _quiet():
    """The exporter talks a lot (stdout, stderr, logging, warnings); keep it for errors only."""
    sink = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export_one(spec, path: Path) -> None:
    module = spec.module.eval()
    with atomic_path(path) as tmp, _quiet():
        try:
            torch.onnx.export(
                module, spec.inputs, str(tmp), input_names=spec.input_names, output_names=spec.output_names,
                dynamic_shapes=dynamic_shapes(spec), external_data=False, verbose=False, optimize=True,
            )
        except Exception as exc:  # noqa: BLE001 - exporter failures vary widely
            stop = _stop_in(exc)
            if stop is not None:  # Ctrl-C or SIGTERM, which the exporter wraps in its own error
                raise stop from None
            raise ArtforgeError(f"ONNX export of {spec.name!r} failed: {first_line(exc, 300)}") from None


def _stop_in(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or SystemExit an exception was raised from, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _compare(spec, path: Path, shown: Path) -> float:
    """The largest difference between onnxruntime on ``path`` and torch; errors name ``shown``."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ArtforgeError(f"{shown}: the exported model fails onnx.checker: {str(exc).splitlines()[0]}") from None
    inputs = _check_inputs(spec)
    # the model's bytes, not its name: onnxruntime takes only names that encode to UTF-8 (a folder named
    # b'run\\xff', legal on Linux, was an internal error: TypeError)
    sess = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    feed = {name: t.detach().cpu().numpy() for name, t in zip(spec.input_names, inputs, strict=True)}
    got = sess.run(spec.output_names, feed)
    with torch.no_grad():
        want = spec.module.eval()(*inputs)
    if isinstance(want, torch.Tensor):
        want = (want,)
    diff = 0.0
    for g, w in zip(got, want, strict=True):
        w = w.detach().cpu().numpy()
        if g.shape != w.shape:
            raise ArtforgeError(f"{shown}: onnxruntime output shape {g.shape} != torch {w.shape}")
        if np.issubdtype(w.dtype, np.floating):
            diff = max(diff, float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64))))) if g.size else diff
        elif not np.array_equal(g, w):
            diff = max(diff, float("inf"))
    return diff


def _check_spec(model: str, spec) -> None:
    """A plugin's OnnxModule must describe itself consistently; say which part is wrong before the
    exporter fails with its own words."""
    where = f"model {model!r}'s ONNX module {spec.name!r}"
    if len(spec.input_names) != len(spec.inputs):
        raise ArtforgeError(f"{where}: {len(spec.input_names)} input_names for {len(spec.inputs)} example inputs")
    if not spec.inputs or not all(isinstance(t, torch.Tensor) for t in spec.inputs):
        raise ArtforgeError(f"{where}: inputs must be a non-empty tuple of example tensors")
    unknown = sorted(set(spec.dynamic_axes) - set(spec.input_names) - set(spec.output_names))
    if unknown:
        names = ", ".join([*spec.input_names, *spec.output_names])
        raise ArtforgeError(f"{where}: dynamic_axes names {', '.join(map(repr, unknown))}, which is not one "
                            f"of its inputs or outputs ({names})")


def _check_inputs(spec) -> tuple[torch.Tensor, ...]:
    """The inputs to compare onnxruntime with torch on: the module's own ``check_inputs``, else,
    when every input's axis 0 is the same dynamic axis (the batch), the example inputs with their
    first row added once more, so the comparison runs at a batch the trace did not see."""
    if spec.check_inputs is not None:
        return spec.check_inputs
    labels = {(spec.dynamic_axes.get(name) or {}).get(0) for name in spec.input_names}
    if len(labels) == 1 and None not in labels:
        return tuple(torch.cat([t, t[:1]]) for t in spec.inputs)
    return spec.inputs


def _check_sampler(model) -> None:
    """The sampler a manifest will name must import, and the generic one needs its facts: fail the
    export, not a later `sample --onnx` that can only say "export again"."""
    target = model.onnx_sampler
    if not target:
        return
    import importlib

    module, _, func = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ArtforgeError(f"model {model.name!r}: its onnx_sampler {target!r} cannot be loaded "
                            f"({first_line(exc)})") from None
    if not callable(fn):
        raise ArtforgeError(f"model {model.name!r}: its onnx_sampler {target!r} is not a function")
    if target == "artforge.onnx_runtime:latent_decoder":
        shape = model.onnx_manifest().get("latent_shape")
        if not (isinstance(shape, list | tuple) and shape and all(isinstance(d, int) and d > 0 for d in shape)):
            raise ArtforgeError(f"model {model.name!r}: latent_decoder needs onnx_manifest()['latent_shape'] "
                                f"(the shape of z without the batch), got {shape!r}")
        decoder = [s for s in model.onnx_modules() if s.name == "decoder"]
        if not decoder or "z" not in decoder[0].input_names:
            raise ArtforgeError(f"model {model.name!r}: latent_decoder needs an ONNX module named 'decoder' "
                                "with an input named 'z'")


def _check_replaceable(out: Path, model: str) -> None:
    """An export folder may be refreshed by an export of the same model, not mixed with another's
    (whose files the new manifest would not name, left beside it)."""
    old = out / MANIFEST
    if not old.is_file():
        return
    try:
        previous = json.loads(old.read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != model:
        raise ArtforgeError(f"{out}: holds another export ({previous or 'unreadable manifest'}); "
                            "export into another folder (-o)")


def export_run(run: str | os.PathLike, out_dir: str | os.PathLike | None = None, which: str = "best",
               echo=print) -> dict:
    """Export a run's inference modules; returns the manifest (also written as manifest.json)."""
    from artforge.engine.run import load_run

    loaded = load_run(run, which=which)
    model = loaded.model.float().eval()
    specs = model.onnx_modules()
    if not specs:
        raise ArtforgeError(f"model {model.name!r} has no sub-modules to export")
    for spec in specs:
        _check_spec(model.name, spec)
    _check_sampler(model)
    out = output_folder(Path(out_dir) if out_dir else loaded.output_path("onnx", f"{loaded.checkpoint.stem}-onnx"))
    _check_replaceable(out, model.name)
    manifest = {
        "format": "artforge-onnx",
        "version": 1,
        "model": model.name,
        "model_config": loaded.config["model_config"],
        "codec": loaded.config["data"]["codec"],
        "token_shape": list(model.info.token_shape),
        "vocab_size": model.info.vocab_size,
        "label_columns": list(model.info.label_columns),
        "sampler": model.onnx_sampler,
        "info": model.onnx_manifest(),
        "step": loaded.step,
        "artforge_version": __version__,
        "modules": {},
    }
    # Build and check every file in a staging folder, then move them in with the manifest last: an
    # export that fails or is stopped leaves the previous export whole, never a mix of the two.
    stage = Path(tempfile.mkdtemp(prefix=partial_prefix(out.name), dir=out))
    try:
        for spec in specs:
            staged = stage / f"{spec.name}.onnx"
            path = out / staged.name
            _export_one(spec, staged)
            diff = _compare(spec, staged, path)
            checked = _check_inputs(spec)
            manifest["modules"][spec.name] = {
                "file": path.name,
                "inputs": [{"name": n, "dtype": _dtype_name(t), "example_shape": list(t.shape)}
                           for n, t in zip(spec.input_names, spec.inputs, strict=True)],
                "outputs": spec.output_names,
                "dynamic_axes": {k: {str(a): v for a, v in ax.items()} for k, ax in spec.dynamic_axes.items()},
                "traced_batch": int(spec.inputs[0].shape[0]),
                "checked_batch": int(checked[0].shape[0]),
                "max_abs_diff": diff,
                "bytes": staged.stat().st_size,
            }
            at, traced = int(checked[0].shape[0]), int(spec.inputs[0].shape[0])
            echo(f"{shown(path)}: {staged.stat().st_size:,} bytes; onnx.checker ok; onnxruntime vs torch at batch "
                 f"{at} ({f'traced at {traced}' if at != traced else 'the traced batch'}): max abs diff {diff:.2e}")
            if not diff <= TOLERANCE:
                raise ArtforgeError(f"{path}: onnxruntime differs from torch by {diff:.3g} (> {TOLERANCE})")
        # The swap is not cut by Ctrl-C or SIGTERM (they stop the command once it is done): stopped half-way
        # it would leave neither export, new files without a manifest. Only SIGKILL can still land in it,
        # and then no manifest names the mix, so nothing offers it as an export.
        with deferred_stop() as stop:
            (out / MANIFEST).unlink(missing_ok=True)  # from here until the new one lands, no export is offered
            for entry in manifest["modules"].values():
                os.replace(stage / entry["file"], out / entry["file"])
            atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        stop.check()
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest
