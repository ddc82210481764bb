"""Token cache: build throughput (1 and 2 workers), DataLoader read throughput, compression."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emoji_images, table  # noqa: E402


def main() -> None:
    import torch

    from artforge.data.cache import build_cache, cache_info
    from artforge.data.dataset import TokenDataset, collate
    from artforge.engine.trainer import EpochBatches

    images, src = emoji_images()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        from PIL import Image

        pngs = Path(d) / "pngs"
        pngs.mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img, "RGBA").save(pngs / f"{i:05d}.png")
        for workers in (1, 2):
            r = build_cache(str(pngs), "hsv544", Path(d) / f"p{workers}.h5", workers=workers, progress=False)
            rows.append((f"build a folder of {r.n_items} PNGs -> hsv544, {workers} worker(s)",
                         f"{r.n_items / r.seconds:,.0f} images/s", f"{r.seconds:.2f}s (PNG decoding included)"))
        for workers in (1, 2):
            out = Path(d) / f"c{workers}.h5"
            r = build_cache(str(src), "hsv544", out, workers=workers, progress=False)
            rows.append((f"build {src.name} -> hsv544, {workers} worker(s)", f"{r.n_items / r.seconds:,.0f} images/s",
                         f"{r.n_items} images in {r.seconds:.2f}s (process start included)"))
        info = cache_info(out)
        rows.append(("compression (gzip+shuffle)", f"{info['compression_ratio']}x",
                     f"{info['token_bytes_raw']:,} raw token bytes -> {info['token_bytes_stored']:,} stored"))
        for workers in (0, 2):
            ds = TokenDataset(out, "train")
            batches = EpochBatches(len(ds), 256, seed=0)
            loader = torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate,
                                                 num_workers=workers, persistent_workers=workers > 0)
            n, t0 = 0, time.perf_counter()
            for epoch in range(40):
                batches.set_position(epoch, 0)
                for b in loader:
                    n += b["tokens"].shape[0]
            dt = time.perf_counter() - t0
            rows.append((f"read through DataLoader, batch 256, {workers} workers", f"{n / dt:,.0f} samples/s",
                         f"{n} samples of 32x32 tokens in {dt:.2f}s"))
    table(rows, ("what", "figure", "detail"))


if __name__ == "__main__":
    main()
