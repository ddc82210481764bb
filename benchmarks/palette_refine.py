"""How much polishing an autoencoder's codes helps: held-out pixel accuracy against refine steps.

Not part of `make bench` (it reads a trained run). `artforge eval RUN --refine N` gives one point;
this sweeps step counts and step sizes on (part of) the validation split, to choose them:

    python benchmarks/palette_refine.py RUN CACHE.h5 [--checkpoint best] [--images 64]
        [--steps 0,10,30,100] [--lr 0.3] [--split val]
"""

from __future__ import annotations

import argparse
import time

import torch

from artforge.engine.run import load_run


def main() -> None:
    ap = argparse.ArgumentParser(usage=__doc__.strip().splitlines()[-2].strip())
    ap.add_argument("run")
    ap.add_argument("cache")
    ap.add_argument("--checkpoint", default="best")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--steps", default="0,10,30,100")
    ap.add_argument("--lr", default="0.3")
    ap.add_argument("--split", default="val")
    a = ap.parse_args()
    loaded = load_run(a.run, which=a.checkpoint)
    model = loaded.model.eval()
    ds = loaded.dataset(a.split, a.cache)
    n = min(a.images, len(ds)) if a.images > 0 else len(ds)
    tokens = torch.stack([ds[i]["tokens"] for i in range(n)]).long()
    with torch.no_grad():
        z0 = model.code(model.posterior(tokens, None))
    print(f"{a.run} ({loaded.checkpoint.name}, step {loaded.step}), {n} {a.split} images")
    print(f"{'lr':>6} {'steps':>6} {'pixel_acc':>10} {'exact':>7} {'recon_nats':>11} {'seconds':>8}")
    def row(lr: float, steps: int) -> None:
        t0 = time.perf_counter()
        with torch.no_grad():
            z = model.refine_code(tokens, None, z0, steps, lr=lr) if steps else z0
            logits = model.decode(z)
            recon = model._recon(logits, tokens)
            hit = logits.argmax(1) == tokens
        exact = float(hit.flatten(1).all(1).float().mean())
        print(f"{lr:6.3g} {steps:6d} {float(hit.float().mean()):10.4f} {exact:7.3f} {float(recon.mean()):11.1f}"
              f" {time.perf_counter() - t0:8.1f}", flush=True)

    row(0.0, 0)  # the encoder's own codes
    for lr in [float(x) for x in a.lr.split(",")]:
        for steps in [int(x) for x in a.steps.split(",") if int(x) > 0]:
            row(lr, steps)

if __name__ == "__main__":
    main()
