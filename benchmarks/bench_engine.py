"""Engine overhead: steps/s of a tiny model in the engine vs the same model in a bare torch loop."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402

STEPS, WARMUP, BATCH = 160, 20, 32


def bare_loop(cache: Path, run_config: dict) -> float:
    import torch

    from artforge.data.dataset import TokenDataset
    from artforge.engine.trainer import EpochBatches
    from artforge.models import DataInfo, config_from_json, get_model_class

    cls = get_model_class(run_config["model"])
    torch.manual_seed(0)
    model = cls(config_from_json(cls, run_config["model_config"]), DataInfo.from_json(run_config["data"]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ds = TokenDataset(cache, "train")
    batches = EpochBatches(len(ds), BATCH, seed=0)
    step, t0 = 0, 0.0
    while step < STEPS:
        for idx in batches:
            if step == WARMUP:
                t0 = time.perf_counter()
            batch = ds.__getitems__(idx)
            opt.zero_grad(set_to_none=True)
            model(batch)["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step == STEPS:
                break
        batches.set_position(batches.epoch + 1, 0)
    return (STEPS - WARMUP) / (time.perf_counter() - t0)


def main() -> None:
    from artforge.data.cache import build_cache
    from artforge.engine.trainer import TrainConfig, Trainer, new_run_config
    from artforge.models import DataInfo, get_model_class, make_config

    with tempfile.TemporaryDirectory() as d:
        cache = Path(d) / "c.h5"
        build_cache("builtin:emoji32", "hsv433", cache, size=16, workers=1, progress=False)
        cls = get_model_class("hsv-transformer")
        mcfg, preset = make_config(cls, {"preset": "tiny"})
        cfg = TrainConfig(steps=STEPS, batch_size=BATCH, log_every=WARMUP, eval_every=STEPS, device="cpu")
        from artforge.data.cache import cache_info

        ci = cache_info(cache)
        info = DataInfo(ci["codec"], ci["vocab_size"], tuple(ci["token_shape"]))
        run_config = new_run_config(cls, mcfg, preset, info, str(cache), None, cfg)
        run = Path(d) / "run"
        run.mkdir()
        Trainer(run, run_config, cfg, resume=False, quiet=True).fit()
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        train = [m for m in lines if m["split"] == "train" and m["step"] > WARMUP]
        engine = sum(m["steps_per_s"] for m in train) / len(train)
        stall = sum(m["data_wait_frac"] for m in train) / len(train)
        bare = bare_loop(cache, run_config)
    table([("hsv-transformer tiny, 16x16 hsv433, batch 32, CPU", f"{engine:.1f}", f"{bare:.1f}",
            f"{engine / bare:.2f}", f"{stall:.2%}")],
          ("model", "engine steps/s", "bare loop steps/s", "ratio", "DataLoader wait (share of step time)"))


if __name__ == "__main__":
    main()
