"""Where a palette autoencoder's held-out misses fall: background or sprite, and how far in colour.

Not part of `make bench` (it reads a trained run). `artforge eval` gives the headline figures;
this breaks the misses down further, to tell near-colour confusions (neighbours in a reduced
palette) from wrong shapes:

    python benchmarks/palette_errors.py RUN CACHE.h5 [best|last] [REFINE_STEPS]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from artforge.engine.run import load_run
from artforge_palette.colorspace import srgb_to_lab


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    run, cache = sys.argv[1], sys.argv[2]
    loaded = load_run(run, which=sys.argv[3] if len(sys.argv) > 3 else "best")
    model, palette = loaded.model.eval(), np.asarray(loaded.codec.palette)
    ds = loaded.dataset("val", cache)
    tokens = torch.stack([ds[i]["tokens"] for i in range(len(ds))]).long()
    refine = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    with torch.no_grad():
        if refine:  # codes polished as `artforge eval --refine` does
            z = model.refine_code(tokens, None, model.code(model.posterior(tokens, None)), refine)
            pred = model.decode(z).argmax(1).numpy()
        else:
            pred = model.reconstruct(tokens).numpy()
    t = tokens.numpy()
    lab = srgb_to_lab(palette[:, :3].astype(np.uint8))
    alpha = palette[:, 3]
    wrong = pred != t
    clear = alpha[t] == 0
    print(f"{len(t)} validation images: pixel accuracy {1 - wrong.mean():.4f}, "
          f"exact images {(~wrong.reshape(len(t), -1).any(1)).mean():.3f}")
    print(f"transparent target pixels {clear.mean():.3f}: accuracy on them {1 - wrong[clear].mean():.4f}, "
          f"on the visible ones {1 - wrong[~clear].mean():.4f}")
    a, b = t[wrong], pred[wrong]
    de = np.linalg.norm(lab[a] - lab[b], axis=1)
    same_alpha = alpha[a] == alpha[b]
    print(f"{wrong.sum()} misses; {1 - same_alpha.mean():.3f} of them change the alpha level; "
          f"delta E quantiles 25/50/75/90: {np.percentile(de, [25, 50, 75, 90]).round(1).tolist()}")
    near = np.linalg.norm(lab[:, None] - lab[None], axis=2) + np.eye(len(lab)) * 1e9
    print(f"palette: nearest-neighbour delta E quantiles 25/50/75: "
          f"{np.percentile(near.min(1), [25, 50, 75]).round(1).tolist()}")
    for thr in (10, 15, 20):
        forgiven = int(((de <= thr) & same_alpha).sum())
        print(f"  pixel accuracy if misses within delta E {thr} (same alpha) counted right: "
              f"{1 - (wrong.sum() - forgiven) / t.size:.4f}")
    per_image = np.percentile(wrong.reshape(len(t), -1).mean(1), [50, 75, 90, 100]).round(3).tolist()
    print(f"per-image miss rate quantiles 50/75/90/max: {per_image}")


if __name__ == "__main__":
    main()
