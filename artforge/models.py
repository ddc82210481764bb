"""The model contract every artforge model follows, and config helpers.

A model is an ``nn.Module`` with a dataclass ``Config``. The engine builds it from the config
and a :class:`DataInfo` (what the token cache holds), calls ``forward(batch, phase)`` to get
named losses, and uses ``sample`` / ``evaluate`` / ``onnx_modules`` for the other commands.

Models with several optimisers (GANs) list their ``phases``: each phase gets its own optimiser
over ``phase_parameters(phase)`` and its own ``forward(batch, phase=...)`` call, in order, every
step. A name may repeat (``["d", "d", "g"]``: two discriminator updates per generator update,
one optimiser). Everything goes through ``forward`` so DistributedDataParallel works unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import json
import math
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from artforge.errors import ArtforgeError, ContractError


@dataclass
class DataInfo:
    """What a model needs to know about its tokens."""

    codec: dict  # the codec config (rebuild with artforge.codecs.codec_from_config)
    vocab_size: int
    token_shape: tuple[int, ...]
    label_columns: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"codec": self.codec, "vocab_size": self.vocab_size, "token_shape": list(self.token_shape),
                "label_columns": list(self.label_columns)}

    @classmethod
    def from_json(cls, d: dict) -> DataInfo:
        return cls(d["codec"], int(d["vocab_size"]), tuple(d["token_shape"]), list(d.get("label_columns", [])))


@dataclass
class OnnxModule:
    """One sub-module to export: ``torch.onnx.export(module, inputs, ...)``."""

    name: str
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]  # example inputs (batch >= 2 so the batch axis stays dynamic)
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    #: inputs to compare ORT with torch on; must use a batch size other than ``inputs``
    check_inputs: tuple[torch.Tensor, ...] | None = None


class ArtModel(nn.Module):
    """Base class of artforge models. Subclasses set the class attributes and implement forward."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type] = object
    #: codec families this model works with ("hsv", "palette", ...)
    codecs: ClassVar[tuple[str, ...]] = ()
    #: named partial configs, chosen with --set preset=NAME
    presets: ClassVar[dict[str, dict]] = {}
    #: conditional models need labels in the cache
    needs_labels: ClassVar[bool] = False
    #: training options this model prefers (lr, batch_size, weight_decay, ema, ...)
    train_defaults: ClassVar[dict] = {}
    #: "package.module:function" that samples from exported ONNX files with numpy only
    onnx_sampler: ClassVar[str | None] = None
    #: evaluate() takes ``refine=N``: N gradient steps on each image's code (``artforge eval --refine``)
    refinable: ClassVar[bool] = False
    #: state-dict entries (by name ending) the weight average copies instead of averaging:
    #: counts and tables, which an average would blur
    ema_copy: ClassVar[tuple[str, ...]] = ()
    #: for a model that does not sample: what to run instead, told when `artforge sample` is asked
    usage: ClassVar[str] = ""

    def __init__(self, config: Any, info: DataInfo):
        super().__init__()
        self.config = config
        self.info = info

    @property
    def device(self) -> torch.device:
        """Where the weights live (what new tensors for sampling and figures are made on)."""
        return next(self.parameters()).device

    # -- training -------------------------------------------------------------------------------
    @property
    def phases(self) -> list[str]:
        return ["main"]

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, batch: dict[str, torch.Tensor], phase: str = "main") -> dict[str, torch.Tensor]:
        """Named losses for one batch; ``loss`` is what the engine back-propagates."""
        raise NotImplementedError

    def on_step(self, step: int, total_steps: int) -> None:
        """Called before every training step (annealing schedules derive from ``step``)."""

    @classmethod
    def check_training_config(cls, config: Any) -> None:
        """Refuse (ArtforgeError) settings that only training reads: loss weights, schedules,
        augmentation. Asked when a run is made (``train``, ``--init``), never when a trained run is
        loaded, so a run made before a bound existed still samples. Sizes that could not build a
        working model belong in the constructor."""

    def flops_per_token(self) -> float | None:
        """Training FLOPs per token (forward + backward) for MFU, or None."""
        return None

    def tokens_per_sample(self) -> int:
        n = 1
        for s in self.info.token_shape:
            n *= s
        return n

    # -- using ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               labels: torch.Tensor | None = None, **options: Any) -> torch.Tensor:
        """``n`` new token grids (n, *token_shape) as a LongTensor."""
        raise ArtforgeError(f"model {self.name!r} cannot sample" + (f"; {self.usage}" if self.usage else ""))

    @torch.no_grad()
    def reconstruct(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise ArtforgeError(f"model {self.name!r} cannot reconstruct")

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        raise ArtforgeError(f"model {self.name!r} has no latent space to interpolate in")

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Cheap figures on validation batches (used during training); must include ``loss``."""
        totals: dict[str, float] = {}
        count = 0
        for batch in batches:
            n = next(iter(batch.values())).shape[0]
            for k, v in self(batch).items():
                totals[k] = totals.get(k, 0.0) + float(v) * n
            count += n
        return {k: v / max(count, 1) for k, v in totals.items()}

    @torch.no_grad()
    def evaluate(self, batches: Iterable[dict[str, torch.Tensor]], codec: Any) -> dict[str, float]:
        """The figures that matter for this model on held-out data (``artforge eval``)."""
        return self.validate(batches)

    def onnx_modules(self) -> list[OnnxModule]:
        """Sub-modules that inference needs, for ``artforge export --onnx``."""
        return []

    def onnx_manifest(self) -> dict:
        """Extra facts the numpy/onnxruntime sampler needs (shapes, latent size ...)."""
        return {}


# -- checks on what models return (plugin code: a wrong result names the model, not a file) ---------
SIGNATURES = {
    "sample": "sample(n, generator=None, temperature=1.0, labels=None, **options)",
    "reconstruct": "reconstruct(tokens, labels=None)",
    "interpolate": "interpolate(a, b, steps, labels=None)",
    "evaluate": "evaluate(batches, codec)",
}


def check_call(model: ArtModel, method: str, *args: Any, flags: dict[str, str] | None = None, **kwargs: Any) -> None:
    """Fail with one line when ``model.<method>`` cannot take these arguments (a plugin's method that lacks
    a documented parameter or ``**options``), instead of a TypeError from the call. ``flags`` names the
    command-line option behind a keyword, for the message."""
    try:
        sig = inspect.signature(getattr(model, method))
    except (TypeError, ValueError):  # no signature to read: the call decides
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        from artforge.onnx_runtime import untaken

        extra = untaken(getattr(model, method), kwargs)
        doc = SIGNATURES.get(method, method)
        if extra:
            opts = [flags[k] for k in extra if flags and k in flags]
            why = f", so {' and '.join(opts)} cannot be used with this model" if opts else ""
            raise ContractError(f"{model.name}.{method}() takes no {', '.join(extra)}{why} "
                                f"(the documented signature is {doc})") from None
        raise ContractError(f"{model.name}.{method}() cannot be called as documented, {doc} ({exc})") from None


def check_losses(model: ArtModel, losses: Any, phase: str = "main") -> dict[str, torch.Tensor]:
    """What ``forward`` returned, checked in Python only (type and shape metadata: no device sync, so
    it runs every step for free): a dict of one-number tensors with a ``loss`` that has a gradient.
    Anything else is a :class:`ContractError` naming the model, not an AttributeError in the loop."""
    if (isinstance(losses, dict) and "loss" in losses
            and all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in losses.values())
            and losses["loss"].requires_grad):
        return losses
    who = f"{model.name}.forward" + (f"(phase={phase!r})" if phase != "main" else "")
    rule = f"{who} must return dict[str, Tensor] with 'loss', each a single number"
    if not isinstance(losses, dict):
        raise ContractError(f"{rule}; got {type(losses).__name__}")
    if "loss" not in losses:
        raise ContractError(f"{rule}; got keys {', '.join(map(str, losses)) or '(none)'}")
    for k, v in losses.items():
        if not isinstance(v, torch.Tensor):
            raise ContractError(f"{rule}; its {k!r} is {type(v).__name__}")
        if v.numel() != 1:
            raise ContractError(f"{rule}; its {k!r} has shape {tuple(v.shape)}")
    raise ContractError(f"{who}'s 'loss' has no gradient: it does not depend on the weights being trained")


def check_figures(model: ArtModel, method: str, figures: Any, need_loss: bool = False) -> dict[str, Any]:
    """What ``validate`` or ``evaluate`` returned, as plain JSON: one-element tensors and numpy scalars
    become Python numbers (``float(v)`` of a 0-d tensor is what a model means by them); anything JSON
    cannot hold is a :class:`ContractError` naming the model and the key. ``validate`` figures must be
    numbers and include ``loss``, which picks best.pt."""
    import numpy as np

    who = f"{model.name}.{method}"
    kind = "number" if need_loss else "number or JSON value"
    if not isinstance(figures, dict):
        raise ContractError(f"{who} must return dict[str, {kind}]; got {type(figures).__name__}")
    out: dict[str, Any] = {}
    for k, v in figures.items():
        if not isinstance(k, str):
            raise ContractError(f"{who} must return dict[str, {kind}]; its key {k!r} is {type(k).__name__}")
        if isinstance(v, torch.Tensor | np.ndarray | np.generic):
            if v.size != 1 if isinstance(v, np.ndarray | np.generic) else v.numel() != 1:
                name = "Tensor" if isinstance(v, torch.Tensor) else "array"
                raise ContractError(f"{who} must return dict[str, {kind}]; its {k!r} is a {name} of shape "
                                    f"{tuple(v.shape)}")
            v = v.item()
        if need_loss and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ContractError(f"{who} must return dict[str, number]; its {k!r} is {type(v).__name__}")
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            raise ContractError(f"{who} must return dict[str, {kind}]; its {k!r} is {type(v).__name__}") from None
        out[k] = v
    if need_loss and "loss" not in out:
        raise ContractError(f"{who} must return a dict with 'loss' (lower is better: it picks best.pt); "
                            f"got keys {', '.join(out) or '(none)'}")
    return out


def check_model_tokens(model: ArtModel, method: str, out: Any, codec: Any, n: int | None = None,
                       shape: tuple[int, ...] | None = None) -> Any:
    """What ``model.<method>()`` returned as tokens (sample, reconstruct, interpolate), checked once per
    call before it is decoded or written: an integer tensor of ``n`` items (when given), each of ``shape``
    (default: the model's token shape), values in the codec's vocabulary. Returns a numpy array of the
    codec's token dtype; anything else is a :class:`ContractError` naming the model's method."""
    from artforge.codecs import checked_tokens

    who = f"{model.name}.{method}()"
    if not isinstance(out, torch.Tensor):
        raise ContractError(f"{who} returned {type(out).__name__}, not a tensor of tokens (a LongTensor)")
    if out.is_floating_point() or out.is_complex() or out.dtype == torch.bool:
        raise ContractError(f"{who} returned {str(out.dtype).removeprefix('torch.')} tokens; tokens are "
                            "integers (a LongTensor)")
    shape = tuple(model.info.token_shape) if shape is None else shape
    arr = checked_tokens(out.detach().cpu().numpy(), codec, who, n, shape)
    return arr.astype(codec.token_dtype, copy=False)


# -- config helpers ------------------------------------------------------------------------------
def config_fields(cls: type) -> dict[str, tuple[Any, Any]]:
    """name -> (type, default) of a config dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out[f.name] = (hints.get(f.name, str), default)
    return out


def field_help(cls: type) -> dict[str, str]:
    """name -> what a config field does, for `artforge models NAME`.

    ``field(metadata={"help": ...})`` wins; otherwise the field's comment in the source of the class
    that declares it (a subclass's own first): the one at the end of its line, or the comment lines
    right above it. Classes without source (made at run time, or shipped as .pyc only) give what
    metadata has.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    out = {f.name: str(f.metadata["help"]) for f in dataclasses.fields(cls) if "help" in f.metadata}
    for klass in cls.__mro__[:-1]:
        for name, text in _source_comments(klass).items():
            if name in names:
                out.setdefault(name, text)
    return out


@functools.lru_cache(maxsize=64)
def _source_comments(klass: type) -> dict[str, str]:
    """Comments on the annotated names of one class body, read with the tokenizer (a '#' inside a
    string is not a comment)."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
        comments: dict[int, str] = {}  # line number (1-based) -> its comment
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    except (OSError, TypeError, tokenize.TokenError, SyntaxError, IndentationError):
        return {}
    lines = source.splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines, 1):
        m = re.match(r"\s+(\w+)\s*:", line)
        if not m or m.group(1) in out:
            continue
        text = comments.get(i, "")
        if not text:  # comment lines directly above the field
            above, j = [], i - 1
            while j >= 1 and lines[j - 1].lstrip().startswith("#") and j in comments:
                above.insert(0, comments[j])
                j -= 1
            text = " ".join(above)
        if text:
            out[m.group(1)] = text
    return out


def type_label(typ: Any) -> str:
    """A config field's type as people write it: int, tuple[int, ...], Literal['relu', 'gelu']."""
    return typ.__name__ if isinstance(typ, type) else str(typ).replace("typing.", "")


def _parse(value: str, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    if origin is typing.Literal:
        choices = typing.get_args(typ)
        for choice in choices:
            if str(choice) == value or (isinstance(choice, bool) and str(choice).lower() == value.lower()):
                return choice
        raise ArtforgeError(f"--set {key}={value}: expected one of {', '.join(map(str, choices))}")
    if origin is dict or typ is dict:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ArtforgeError(f"--set {key}={value}: expected a JSON object, e.g. {key}='{{\"a\": 1}}'")
        return parsed
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value.lower() in ("none", "null", ""):
            return None
        return _parse(value, args[0], key)
    if origin in (tuple, list):
        inner = typing.get_args(typ)[0] if typing.get_args(typ) else str
        items = [_parse(v.strip(), inner, key) for v in value.split(",") if v.strip()]
        return tuple(items) if origin is tuple else items
    try:
        if typ is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ is int:
            return int(value)
        if typ is float:
            return float(value)
    except ValueError:
        raise ArtforgeError(f"--set {key}={value}: expected {typ.__name__}") from None
    return value


def parse_sets(pairs: Iterable[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ArtforgeError(f"--set {pair!r}: expected key=value")
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def make_config(model_cls: type[ArtModel], overrides: dict[str, Any]) -> tuple[Any, str | None]:
    """Build a model config from a preset and ``--set`` overrides (strings are parsed by type)."""
    fields = config_fields(model_cls.Config)
    overrides = dict(overrides)
    preset = overrides.pop("preset", None)
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in model_cls.presets:
            known = ", ".join(model_cls.presets) or "none"
            raise ArtforgeError(f"model {model_cls.name!r} has no preset {preset!r}; presets: {known}")
        values.update(model_cls.presets[preset])
    for k, v in overrides.items():
        if k not in fields:
            raise ArtforgeError(
                f"unknown config key {k!r} for model {model_cls.name!r}; keys: preset, {', '.join(fields)}"
            )
        values[k] = _parse(v, fields[k][0], k) if isinstance(v, str) and fields[k][0] is not str else v
    try:
        config = model_cls.Config(**values)
    except (TypeError, ValueError) as exc:
        raise ArtforgeError(f"bad config for model {model_cls.name!r}: {exc}") from None
    _check_ranges(model_cls.name, config)
    model_cls.check_training_config(config)
    return config, preset


def _check_ranges(model: str, config: Any) -> None:
    """What holds for every model's settings: numbers are finite, a dropout is in [0, 1). (Each model
    checks its own bounds; whatever fails to build a model is reported by the trainer.)"""
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        for x in v if isinstance(v, tuple) else (v,):
            if isinstance(x, float) and not math.isfinite(x):
                raise ArtforgeError(f"model {model!r}: {f.name} must be a finite number, got {v}")
            if "dropout" in f.name and isinstance(x, int | float) and not 0 <= x < 1:
                raise ArtforgeError(f"model {model!r}: {f.name} must be in [0, 1), got {v}")


def config_to_json(config: Any) -> dict:
    return dataclasses.asdict(config)


def config_from_json(model_cls: type[ArtModel], d: dict) -> Any:
    fields = config_fields(model_cls.Config)
    values = {}
    for k, v in d.items():
        if k in fields:
            typ = fields[k][0]
            values[k] = tuple(v) if typing.get_origin(typ) is tuple and isinstance(v, list) else v
    return model_cls.Config(**values)


def get_model_class(name: str) -> type[ArtModel]:
    from artforge.plugins import lookup

    return lookup("models", name).obj


def check_codec(model_cls: type[ArtModel], codec_config: dict) -> None:
    family = codec_config.get("codec")
    if model_cls.codecs and family not in model_cls.codecs:
        fits = ", ".join(model_cls.codecs)
        raise ArtforgeError(
            f"model {model_cls.name!r} does not work with codec {codec_config.get('spec', family)!r}; "
            f"it takes: {fits}"
        )
