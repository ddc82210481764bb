"""The training loop shared by every model.

CPU, one GPU or many (torchrun -> DDP, same code path); bf16 autocast on CUDA (and on CPU when
asked: ``precision=bf16``, ~1.7x faster convolutions on CPUs with AVX-512 BF16); optional
torch.compile; AdamW with warm-up + cosine; gradient clipping; optional EMA; a NaN/inf guard;
atomic checkpoints that resume exactly; rich progress; metrics as JSON lines; sample grids and a
loss curve in the run folder.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import signal
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from artforge import __version__
from artforge.data.splits import leaves_no_training
from artforge.engine.checkpoint import fit_error, load_checkpoint, save_checkpoint
from artforge.engine.run import BEST, CONFIG, LAST, read_metrics, split_fractions
from artforge.errors import ArtforgeError, ContractError, distributed_env, first_line
from artforge.fsutil import atomic_write_text
from artforge.signals import deferred_stop

PRECISIONS = ("auto", "bf16", "fp32")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


@dataclass
class TrainConfig:
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int | None = None
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    ema: float = 0.0
    seed: int = 0
    val_fraction: float = 0.1  # share of the cache (by name hash) that validates and chooses best.pt
    test_fraction: float = 0.0  # share held out from training and validation, for `artforge eval --split test`
    num_workers: int = 0
    log_every: int = 10
    eval_every: int | None = None
    sample_every: int | None = None
    ckpt_every: int | None = None
    samples: int = 16
    compile: bool = False
    compile_mode: str = "default"  # torch.compile's mode, e.g. max-autotune-no-cudagraphs (implies compile)
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32
    max_time: float | None = None  # seconds; a safety stop (not deterministic)
    freeze: str = ""  # comma-separated parameter name prefixes kept fixed (e.g. "decoder")

    def __post_init__(self) -> None:
        """Reject settings no run could use, whichever way they came (options, --set train.X, a run file)."""
        def bad(key: str, rule: str) -> ArtforgeError:
            return ArtforgeError(f"train setting {key} must be {rule}, got {getattr(self, key)!r}")

        def number(key: str) -> float:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise bad(key, "a finite number")
            return v

        for key in ("steps", "batch_size", "log_every", "samples"):
            if getattr(self, key) is not None and number(key) < 1:
                raise bad(key, "at least 1")
        for key in ("warmup_steps", "num_workers", "eval_every", "sample_every", "ckpt_every", "seed"):
            if getattr(self, key) is not None and number(key) < 0:
                raise bad(key, ">= 0")
        for key in ("lr", "weight_decay", "grad_clip"):  # lr 0: fine-tune nothing, e.g. to evaluate --init weights
            if number(key) < 0:
                raise bad(key, ">= 0")
        if self.epochs is not None and number("epochs") <= 0:
            raise bad("epochs", "> 0")
        if self.max_time is not None and number("max_time") <= 0:
            raise bad("max_time", "> 0 seconds")
        for key in ("beta1", "beta2", "ema"):
            if not 0 <= number(key) < 1:
                raise bad(key, "in [0, 1)")
        for key in ("min_lr_ratio", "val_fraction"):
            if not 0 <= number(key) <= 1:
                raise bad(key, "in [0, 1]")
        if number("test_fraction") < 0:
            raise bad("test_fraction", ">= 0")
        if leaves_no_training(self.val_fraction, self.test_fraction):
            raise ArtforgeError(f"train settings val_fraction + test_fraction must be below 1 (the rest is "
                                f"trained on), got {self.val_fraction!r} + {self.test_fraction!r}")


WORKER_GRACE_S = 60


def _loader_worker_init(worker_id: int) -> None:
    """SIGTERM to the whole process group (a job scheduler) is for the trainer to act on: it saves
    last.pt and stops. A loader worker killed by it at once would fail the run before that, so the
    first SIGTERM gives a worker WORKER_GRACE_S seconds (a second one, or the alarm, ends it)."""
    signal.signal(signal.SIGTERM, _worker_sigterm)


def _worker_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.alarm(WORKER_GRACE_S)  # SIGALRM's default action ends the process


def _stop_loader(loader) -> None:
    """End a loader's worker processes now (persistent workers otherwise live until the loader is
    collected, which an exception's traceback can put off until the process exits)."""
    it = getattr(loader, "_iterator", None)
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


class NonFinite(ArtforgeError):
    pass


class EpochBatches:
    """Deterministic batches: epoch ``e`` is a permutation seeded by (seed, e), cut into global
    batches; each rank takes its contiguous slice. Resumes at any (epoch, batch)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ArtforgeError(f"batch size {batch_size} does not split over {world} processes")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_epoch = n // batch_size
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, batch: int) -> None:
        self.epoch, self.start = epoch, batch

    def __len__(self) -> int:
        return self.per_epoch - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).numpy()
        per_rank = self.batch_size // self.world
        for b in range(self.start, self.per_epoch):
            glob = perm[b * self.batch_size : (b + 1) * self.batch_size]
            yield glob[self.rank * per_rank : (self.rank + 1) * per_rank].tolist()


def lr_at(step: int, cfg: TrainConfig, total: int) -> float:
    warm = cfg.warmup_steps if cfg.warmup_steps is not None else min(100, max(1, total // 20))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


def pick_device(choice: str, local_rank: int = 0) -> torch.device:
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ArtforgeError(f"--device {choice}, but CUDA is not available on this machine")
        index = choice.partition(":")[2]
        if not index:
            return torch.device(f"cuda:{local_rank}")
        count = torch.cuda.device_count()
        if not index.isdigit() or int(index) >= count:
            raise ArtforgeError(f"--device {choice}: this machine has GPUs cuda:0..cuda:{count - 1}")
        return torch.device(choice)
    if choice == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    raise ArtforgeError(f"unknown device {choice!r}; use auto, cpu, cuda or cuda:N")


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def _batch_to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _check_constructor(cls: type, config: Any, info: Any) -> None:
    """A model class is built as ``cls(config, info)``; one whose ``__init__`` cannot take that is the
    plugin's mistake, named as such rather than as a bad setting."""
    import inspect

    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(config, info)
    except TypeError:
        raise ContractError(f"model {cls.name!r}: artforge builds it as {cls.__qualname__}(config, info), but its "
                            f"__init__ takes {sig}") from None


def _is_default(cls: type, config: Any) -> bool:
    """Whether a model config is its class's default (no preset or --set changed it)."""
    try:
        return dataclasses.asdict(config) == dataclasses.asdict(cls.Config())
    except Exception:  # noqa: BLE001 - a Config without defaults: settings were given
        return False


class Trainer:
    """Train one model on one token cache into one run folder."""

    def __init__(self, run_dir: Path, run_config: dict, cfg: TrainConfig, resume: bool, quiet: bool = False,
                 init_weights: dict | None = None):
        from artforge.codecs import codec_from_config
        from artforge.data.dataset import TokenDataset
        from artforge.models import DataInfo, config_from_json, get_model_class

        self.run_dir, self.run_config, self.cfg, self.quiet = run_dir, run_config, cfg, quiet
        if cfg.precision not in PRECISIONS:
            raise ArtforgeError(f"unknown precision {cfg.precision!r}; use {', '.join(PRECISIONS)}")
        if cfg.compile_mode not in COMPILE_MODES:
            raise ArtforgeError(f"unknown train.compile_mode {cfg.compile_mode!r}; use {', '.join(COMPILE_MODES)}")
        self.world, self.rank, local = distributed_env()
        self.device = pick_device(cfg.device, local)
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            torch.distributed.init_process_group(backend)
        self.main = self.rank == 0
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        cache = run_config["data"]["cache"]
        # the test split (test_fraction) is read by `artforge eval` only: nothing here trains on it,
        # validates on it or chooses a checkpoint by it
        self.train_ds = TokenDataset(cache, "train", cfg.val_fraction, test_fraction=cfg.test_fraction)
        self.val_ds = TokenDataset(cache, "val", cfg.val_fraction, test_fraction=cfg.test_fraction)
        if len(self.train_ds) == 0:
            raise ArtforgeError(f"{cache}: no training samples")
        if cfg.batch_size % self.world:  # before anything is written (EpochBatches checks it too)
            raise ArtforgeError(f"batch size {cfg.batch_size} does not split over {self.world} processes")
        if cfg.batch_size > len(self.train_ds):
            raise ArtforgeError(f"batch size {cfg.batch_size} is larger than the {len(self.train_ds)} training "
                                f"samples of {cache}; use --batch-size {len(self.train_ds)} or less")
        if len(self.val_ds) == 0:
            self._say(f"note: {cache} has no validation samples at val_fraction {cfg.val_fraction}; "
                      "validating on the training split")
            self.val_ds = TokenDataset(cache, "train", cfg.val_fraction, test_fraction=cfg.test_fraction)
        if cfg.test_fraction > 0 and self.train_ds.split_sizes["test"] == 0:
            self._warn(f"{cache} has no test samples at test_fraction {cfg.test_fraction}: the run keeps no "
                       "test split, and `artforge eval` will need --split val; a larger test_fraction keeps one")
        self.codec = codec_from_config(run_config["data"]["codec"])
        per_epoch = len(self.train_ds) // cfg.batch_size
        if cfg.steps is None:
            epochs = cfg.epochs if cfg.epochs is not None else 1.0
            cfg.steps = max(1, math.ceil(epochs * per_epoch))
        self.total = cfg.steps
        every = max(1, self.total // 10)
        cfg.eval_every = cfg.eval_every or every
        cfg.sample_every = cfg.sample_every or cfg.eval_every
        cfg.ckpt_every = cfg.ckpt_every or cfg.eval_every

        cls = get_model_class(run_config["model"])
        info = DataInfo.from_json(run_config["data"])
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        model_config = config_from_json(cls, run_config["model_config"])
        _check_constructor(cls, model_config, info)
        try:
            with warnings.catch_warnings():  # e.g. torch's note on zero-size layers: the error below says it
                warnings.simplefilter("ignore", UserWarning)
                model = cls(model_config, info)
        except (ValueError, RuntimeError, ArithmeticError, TypeError, IndexError) as exc:
            why = f"{type(exc).__name__}: {first_line(exc, 160)}"
            if _is_default(cls, model_config):  # nothing the user set: the model's own code fails
                raise ContractError(f"model {cls.name!r} cannot be built with its default settings ({why}); "
                                    f"the error is in {cls.__qualname__}.__init__") from None
            raise ArtforgeError(f"model {cls.name!r} cannot be built with these settings ({why}); "
                                "check the --set values") from None
        self.model = model.to(self.device)
        if init_weights is not None:  # --init: another run's weights, this run's optimiser and schedule
            try:
                self.model.load_state_dict(init_weights)
            except RuntimeError as exc:
                raise ArtforgeError(f"--init weights do not fit this model ({fit_error(exc)})") from None
        if cfg.freeze:
            self._freeze(cfg.freeze)
        self.optimizers = {ph: self._make_optimizer(self.model.phase_parameters(ph)) for ph in self.model.phases}
        self.ema = None
        if cfg.ema > 0:
            self.ema = {k: v.detach().clone().float() for k, v in self.model.state_dict().items()}
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self._window: tuple[dict[str, torch.Tensor], dict[str, int]] = ({}, {})  # the log window's loss sums, counts
        self.best_val = math.inf
        self.elapsed = 0.0
        if resume and (run_dir / LAST).is_file():
            self._load(run_dir / LAST)
            if self.total < self.step:
                raise ArtforgeError(f"{run_dir} is already at step {self.step}; pass --steps above it to go on")
        elif resume and (run_dir / BEST).is_file():  # starting over would overwrite the kept best weights
            raise ArtforgeError(f"{run_dir / LAST}: missing, so the run cannot continue where it stopped "
                                f"(its {BEST} is there); start a new run, e.g. with --init {run_dir / BEST}")
        elif resume:
            self._say(f"note: {run_dir} has no checkpoint yet; starting from step 0")
        self.forward = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.forward = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                               find_unused_parameters=len(self.model.phases) > 1)
        if cfg.compile or cfg.compile_mode != "default":
            self.forward = torch.compile(self.forward, mode=cfg.compile_mode)
        self.stop_reason: str | None = None
        self.sampling = True  # off after a sample grid fails: one warning, not one per interval

    # -- pieces ---------------------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        if self.main and not self.quiet:
            from rich.console import Console

            Console(stderr=True).print(msg, highlight=False, markup=False)

    def _warn(self, msg: str) -> None:
        """One line on stderr, even with --quiet: something the user must fix, though training goes on."""
        if self.main:
            from rich.console import Console

            Console(stderr=True).print(f"warning: {msg}", highlight=False, markup=False, soft_wrap=True)

    def _freeze(self, spec: str) -> None:
        """Keep the parameters under each comma-separated name prefix fixed (fine-tuning a part)."""
        prefixes = [p.strip() for p in spec.split(",") if p.strip()]
        params = dict(self.model.named_parameters())

        def under(name: str, prefix: str) -> bool:
            return name == prefix or name.startswith(prefix + ".")

        for prefix in prefixes:
            if not any(under(n, prefix) for n in params):
                parts = ", ".join(sorted({n.split(".")[0] for n in params}))
                raise ArtforgeError(f"train.freeze: {self.model.name} has no parameters under {prefix!r}; "
                                    f"its parts: {parts}")
        frozen = [n for n in params if any(under(n, pre) for pre in prefixes)]
        if len(frozen) == len(params):
            raise ArtforgeError(f"train.freeze={spec} fixes every parameter; nothing would train")
        for n in frozen:
            params[n].requires_grad_(False)
        count = sum(params[n].numel() for n in frozen)
        self._say(f"frozen: {count:,} parameters under {', '.join(prefixes)}")

    def _make_optimizer(self, params: list) -> torch.optim.Optimizer:
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        groups = [g for g in ({"params": decay, "weight_decay": self.cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}) if g["params"]]
        kw = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.AdamW(groups, lr=self.cfg.lr, betas=(self.cfg.beta1, self.cfg.beta2), **kw)

    def _state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "ema": self.ema,
            "rng": rng,
            "best_val": self.best_val,
            "elapsed": self.elapsed,
            "log_window": {"sums": {k: v.detach().cpu() for k, v in self._window[0].items()},
                           "counts": dict(self._window[1])},
            "config": json.dumps(self.run_config),
        }

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device)
        self._check_same_split(path, state)
        try:
            self.model.load_state_dict(state["model"])
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ArtforgeError(f"{path}: checkpoint does not fit this run ({fit_error(exc)})") from None
        if self.ema is not None and state.get("ema"):
            self.ema = {k: v.to(self.device) for k, v in state["ema"].items()}
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best_val = state.get("best_val", math.inf)
        self.elapsed = state.get("elapsed", 0.0)
        window = state.get("log_window") or {}
        self._window = ({k: v.to(self.device) for k, v in window.get("sums", {}).items()},
                        dict(window.get("counts", {})))
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)
        self._say(f"resumed {self.run_dir} at step {self.step}")

    def _check_same_split(self, path: Path, state: dict) -> None:
        """A resumed run keeps the split it trained on: another val_fraction or test_fraction (config.json
        edited since) would move items it has trained on into the held-out splits. Runs from before
        test_fraction existed have none: 0."""
        try:
            was = json.loads(state["config"])["train"]
        except (KeyError, TypeError, json.JSONDecodeError):
            return  # nothing recorded to compare with
        if not isinstance(was, dict):
            return
        for key, before in zip(("val_fraction", "test_fraction"), split_fractions(was), strict=True):
            now = getattr(self.cfg, key)
            if before != now:
                raise ArtforgeError(f"{self.run_dir / CONFIG}: train.{key} is {now!r}, but the run trained with "
                                    f"{before!r} ({path.name}); a resumed run keeps its split, so set it back, or "
                                    "train a new run from scratch (not --init from this one: its weights have "
                                    "seen the items that would move)")

    def save(self, name: str = LAST) -> None:
        if self.main:
            save_checkpoint(self.run_dir / name, self._state())

    def _loader(self, ds, batches) -> torch.utils.data.DataLoader:
        from artforge.data.dataset import collate

        # Its own generator: creating a DataLoader iterator draws a seed, which must not come from the
        # global RNG (that would make the RNG stream depend on where a run was resumed).
        return torch.utils.data.DataLoader(
            ds, batch_sampler=batches, collate_fn=collate, num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=self.cfg.num_workers > 0,
            generator=torch.Generator().manual_seed(self.cfg.seed), worker_init_fn=_loader_worker_init,
        )

    def _val_batches(self):
        bs = min(self.cfg.batch_size * 2, 512)
        idx = list(range(len(self.val_ds)))
        for i in range(0, len(idx), bs):
            yield _batch_to(self.val_ds.__getitems__(idx[i : i + bs]), self.device)

    def _autocast(self):
        p = self.cfg.precision
        bf16 = p == "bf16" or (p == "auto" and self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)

    def _with_ema(self):
        trainer = self

        class _Swap:
            def __enter__(self):
                self.saved = None
                if trainer.ema is not None:
                    self.saved = copy.deepcopy(trainer.model.state_dict())
                    trainer.model.load_state_dict(trainer.ema)

            def __exit__(self, *exc):
                if self.saved is not None:
                    trainer.model.load_state_dict(self.saved)

        return _Swap()

    def validate(self) -> dict[str, float]:
        from artforge.models import check_figures

        self.model.eval()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), \
                self._with_ema(), self._autocast():
            torch.manual_seed(self.cfg.seed + 1)
            figures = self.model.validate(self._val_batches())
        self.model.train()
        return check_figures(self.model, "validate", figures, need_loss=True)

    def write_samples(self) -> Path | None:
        """A grid of samples in samples/, or None. A model without a sample() of its own writes none. A
        grid that fails (the model's sample() or the codec's decode raises, or returns what its contract
        rules out) is one warning naming the culprit, and no further grids are tried: a sample grid is a
        by-product that must never cost the run."""
        from artforge.grid import make_grid
        from artforge.imageio import save_picture
        from artforge.models import ArtModel

        if not self.sampling or type(self.model).sample is ArtModel.sample:
            return None
        try:
            sheet = make_grid(self._sample_images())  # a sheet too large to open is refused too
        except ArtforgeError as exc:
            self.sampling = False
            self._warn(f"no more sample grids in this run (training goes on): {exc}")
            return None
        path = self.run_dir / "samples" / f"step-{self.step:06d}.png"
        path.parent.mkdir(exist_ok=True)
        save_picture(sheet, path)
        return path

    def _sample_images(self):
        """The sample grid's pictures; every failure is a ContractError naming the model or the codec."""
        from artforge.codecs import decode_checked
        from artforge.models import check_model_tokens

        name, n = self.model.name, self.cfg.samples
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), \
                    self._with_ema(), self._autocast():
                g = torch.Generator(self.device).manual_seed(self.cfg.seed)
                out = self.model.sample(n, generator=g)
        except Exception as exc:  # noqa: BLE001 - plugin code: whatever it raises, the run goes on
            kind = "" if isinstance(exc, ArtforgeError) else f"{type(exc).__name__}: "
            raise ContractError(f"{name}.sample() failed ({kind}{first_line(exc, 160)})") from None
        finally:
            self.model.train()
        tokens = check_model_tokens(self.model, "sample", out, self.codec, n)
        try:
            return decode_checked(self.codec, tokens)
        except ContractError:
            raise
        except ArtforgeError as exc:
            raise ContractError(f"codec {self.codec.spec}'s decode refused {name}.sample()'s tokens "
                                f"({first_line(exc, 160)})") from None

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        from artforge.models import check_losses

        cfg = self.cfg
        batches = EpochBatches(len(self.train_ds), cfg.batch_size, cfg.seed, self.rank, self.world)
        metrics = MetricsLog(self.run_dir / "metrics.jsonl", self.main, truncate_after=self.step)
        flops_tok = self.model.flops_per_token()
        peak = peak_flops(self.device)
        tok_per_sample = self.model.tokens_per_sample()
        progress = Progress(self.total, self.step, enabled=self.main and not self.quiet)
        self.model.train()
        # the log window's loss sums: kept in checkpoints, so a resumed run logs the same means
        sums, counts = self._window
        finite_flags: list[tuple[int, str, torch.Tensor]] = []
        n_sum, t_log, wait = 0, time.perf_counter(), 0.0
        t_start = time.perf_counter() - self.elapsed
        last_eval: dict[str, float] = {}
        loader = self._loader(self.train_ds, batches)  # one loader: its workers live across epochs
        with contextlib.ExitStack() as cleanup:  # on the way out: signal handlers, loader workers, bar
            cleanup.callback(progress.close)
            cleanup.callback(_stop_loader, loader)
            # Ctrl-C / SIGTERM: the step finishes and last.pt is saved; a second signal stops at once
            stop = cleanup.enter_context(deferred_stop())
            while self.step < self.total and self.stop_reason is None:
                batches.set_position(self.epoch, self.batch_in_epoch)
                t_wait = time.perf_counter()
                for idx_batch in loader:
                    batch = _batch_to(idx_batch, self.device)
                    wait += time.perf_counter() - t_wait
                    lr = lr_at(self.step, cfg, self.total)
                    self.model.on_step(self.step, self.total)
                    for phase in self.model.phases:  # a phase may repeat (two discriminator steps per step)
                        opt = self.optimizers[phase]
                        for group in opt.param_groups:
                            group["lr"] = lr
                        opt.zero_grad(set_to_none=True)
                        with self._autocast():
                            losses = check_losses(self.model, self.forward(batch, phase=phase), phase)
                        for k, v in losses.items():
                            key = k if len(self.optimizers) == 1 else f"{phase}/{k}"
                            d = v.detach().float()
                            finite_flags.append((self.step, key, d))
                            sums[key] = sums[key] + d if key in sums else d
                            counts[key] = counts.get(key, 0) + 1
                        losses["loss"].backward()
                        if cfg.grad_clip > 0:
                            gn = torch.nn.utils.clip_grad_norm_(self.model.phase_parameters(phase), cfg.grad_clip)
                            name = "gradient norm" if len(self.optimizers) == 1 else f"{phase} gradient norm"
                            finite_flags.append((self.step, name, gn.detach()))
                        opt.step()
                    if self.ema is not None:
                        self._update_ema()
                    self.step += 1
                    self.batch_in_epoch += 1
                    n_sum += 1
                    due_log = self.step % cfg.log_every == 0 or self.step == self.total
                    due_eval = self.step % cfg.eval_every == 0 or self.step == self.total
                    due_sample = self.step % cfg.sample_every == 0 or self.step == self.total
                    due_ckpt = self.step % cfg.ckpt_every == 0 or self.step == self.total
                    # On GPU the check waits for the device, so it runs only when something is saved.
                    if self.device.type == "cpu" or due_log or due_eval or due_ckpt or stop.signum:
                        self._check_finite(finite_flags)
                    if due_log:
                        now = time.perf_counter()
                        dt = now - t_log
                        means = self._reduce({k: float(v) / counts[k] for k, v in sums.items()})
                        sps = n_sum / dt if dt > 0 else 0.0
                        rec = {"step": self.step, "epoch": self.epoch, "split": "train", **means, "lr": lr,
                               "steps_per_s": sps, "samples_per_s": sps * cfg.batch_size,
                               "tokens_per_s": sps * cfg.batch_size * tok_per_sample,
                               "data_wait_frac": wait / dt if dt > 0 else 0.0,
                               "elapsed_s": now - t_start}
                        if flops_tok and peak:
                            rec["mfu"] = rec["tokens_per_s"] * flops_tok / (peak * self.world)
                        metrics.write(rec)
                        progress.update(self.step, rec)
                        sums.clear()
                        counts.clear()
                        n_sum, wait, t_log = 0, 0.0, now
                    improved = False
                    if due_eval and self.main:
                        last_eval = self.validate()
                        metrics.write({"step": self.step, "epoch": self.epoch, "split": "val", **last_eval})
                        progress.note(last_eval)
                        improved = last_eval["loss"] < self.best_val
                        if improved:
                            self.best_val = last_eval["loss"]
                    # last.pt before best.pt, and whenever best.pt is written: best.pt is never newer
                    # than last.pt, so a run that fails after saving anything can be resumed
                    if due_ckpt or improved:
                        self.elapsed = time.perf_counter() - t_start
                        self.save(LAST)
                    if improved:
                        self.save(BEST)
                    if due_sample and self.main:  # after the checkpoints: a grid cannot cost them
                        self.write_samples()
                    if due_eval and self.main:
                        plot_run(self.run_dir)
                    if self.world > 1 and (due_eval or due_ckpt):
                        torch.distributed.barrier()
                    if stop.signum:
                        self.stop_reason = "interrupted"
                    elif cfg.max_time and time.perf_counter() - t_start > cfg.max_time:
                        self.stop_reason = "max_time"
                    if self.step >= self.total or self.stop_reason:
                        break
                    t_wait = time.perf_counter()
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
            if self.stop_reason:
                self.elapsed = time.perf_counter() - t_start
                self.save(LAST)
                # where the run stopped, between log lines: `artforge runs` reads how far it got from the log
                # (never from a checkpoint); train lines stay those of an unbroken run, so resume is exact
                metrics.write({"step": self.step, "epoch": self.epoch, "split": "stop", "reason": self.stop_reason,
                               "elapsed_s": self.elapsed})
                if self.main:
                    plot_run(self.run_dir)
        return {"step": self.step, "stop": self.stop_reason or "done", "val": last_eval,
                "seconds": time.perf_counter() - t_start, "signal": stop.signum}

    def _check_finite(self, flags: list) -> None:
        if not flags:
            return
        values = torch.stack([f[2].reshape(()) for f in flags])
        ok = torch.isfinite(values)
        if self.world > 1:
            bad = (~ok).any().float()
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
            if bad.item() == 0:
                flags.clear()
                return
        if bool(ok.all()):
            flags.clear()
            return
        i = int((~ok).nonzero()[0])
        step, name, value = flags[i][0], flags[i][1], float(values[i])
        flags.clear()
        last = self.run_dir / LAST
        kept = f"; the last good checkpoint is {last}" if last.is_file() else "; no checkpoint was saved before it"
        raise NonFinite(f"training stopped: {name} became {value} at step {step + 1}{kept}; try a lower --lr")

    def _update_ema(self) -> None:
        # Warm-up: the decay grows with the step (0.1 after the first, 0.9 by step 80), so an average
        # of 0.999 does not hold on to the initial weights for thousands of steps.
        d = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        copy = tuple(getattr(self.model, "ema_copy", ()))
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                if v.dtype.is_floating_point and not (copy and k.endswith(copy)):
                    self.ema[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
                else:
                    self.ema[k].copy_(v)

    def _reduce(self, means: dict[str, float]) -> dict[str, float]:
        if self.world == 1 or not means:
            return means
        keys = sorted(means)
        t = torch.tensor([means[k] for k in keys], device=self.device, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist(), strict=True)}


class MetricsLog:
    """metrics.jsonl, one JSON object per line; on resume, lines after the checkpoint are dropped."""

    def __init__(self, path: Path, enabled: bool, truncate_after: int):
        self.path, self.enabled = path, enabled
        if enabled and path.exists():
            keep = [line for line in path.read_text().splitlines()
                    if line.strip() and _step_of(line) <= truncate_after]
            atomic_write_text(path, "".join(line + "\n" for line in keep))

    def write(self, rec: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in rec.items()}) + "\n")


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, ValueError, TypeError, OverflowError):  # 1e400 reads as inf
        return 1 << 62


def plot_run(run_dir: Path) -> None:
    from artforge.engine.plot import plot_curves

    def point(r: dict) -> tuple[float, float] | None:  # a line edited or damaged by hand is not plotted
        xy = r.get("step"), r.get("loss")
        if all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in xy):
            return xy
        return None

    recs = read_metrics(run_dir)
    series = {name: [xy for r in recs if r.get("split") == split and (xy := point(r)) is not None]
              for name, split in (("train loss", "train"), ("val loss", "val"))}
    plot_curves(series, Path(run_dir) / "loss.png", title=f"{Path(run_dir).name}: loss")


class Progress:
    """rich progress bar: step, step/s, samples/s, losses, ETA."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.bar = None
        self.extra = ""
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress
            from rich.table import Column

            # step count, times and ETA keep their width; a narrow terminal cuts the losses instead
            info = TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))
            self.bar = RichProgress(TextColumn("train"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), info,
                                    console=Console(stderr=True), refresh_per_second=4, expand=True)
            self.bar.start()
            self.task = self.bar.add_task("train", total=total, completed=start, info="")

    def update(self, step: int, rec: dict) -> None:
        if self.bar:
            losses = " ".join(f"{k}={v:.4g}" for k, v in rec.items()
                              if k not in ("step", "epoch", "split", "lr", "steps_per_s", "samples_per_s",
                                           "tokens_per_s", "data_wait_frac", "elapsed_s", "mfu")
                              and isinstance(v, float))
            speed = f"{rec['steps_per_s']:.1f} step/s {rec['samples_per_s']:.0f} samples/s"
            if "mfu" in rec:
                speed += f" mfu {rec['mfu']:.0%}"
            self.bar.update(self.task, completed=step, info=f"{losses}{self.extra} | {speed}")

    def note(self, val: dict) -> None:
        if "loss" in val:
            self.extra = f" | val {val['loss']:.4g}"

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None


def train_config_from(model_cls, options: dict[str, Any]) -> TrainConfig:
    """TrainConfig defaults < the model's train_defaults < explicit options (None = unset)."""
    values = dataclasses.asdict(TrainConfig())
    values.update(getattr(model_cls, "train_defaults", {}) or {})
    values.update({k: v for k, v in options.items() if v is not None})
    return TrainConfig(**values)


def write_run_config(run_dir: Path, config: dict) -> None:
    atomic_write_text(run_dir / CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")


def new_run_config(model_cls, model_config, preset, info, cache: str, source: str | None, cfg: TrainConfig) -> dict:
    return {
        "model": model_cls.name,
        "model_config": dataclasses.asdict(model_config),
        "preset": preset,
        "data": {**info.to_json(), "cache": str(Path(cache).resolve()), "source": source},
        "train": dataclasses.asdict(cfg),
        "artforge_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": uuid.uuid4().hex,  # tells this run's checkpoints from another's copied into its folder
    }


def model_summary(model: torch.nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.2f}M parameters" if n >= 1e5 else f"{n:,} parameters"

