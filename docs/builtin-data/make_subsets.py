"""Cut the small built-in data sets shipped inside the plugins from ../shared/data.

Run once from the repository root: python docs/builtin-data/make_subsets.py ../shared/data
Each subset is a seeded random sample of the public split; licence notes are copied beside it.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import numpy as np

SEED = 20261123


def _copy_licences(src: Path, dst: Path, readme: str) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    if (src / "licenses").is_dir():
        shutil.copytree(src / "licenses", dst / "licenses", dirs_exist_ok=True)
    (dst / "README.md").write_text(readme)


def npz_subset(src: Path, name: str, dst: Path, n: int | None, keys: list[str]) -> int:
    z = np.load(src)
    total = len(z["images"])
    idx = np.arange(total) if n is None else np.sort(np.random.default_rng(SEED).choice(total, n, replace=False))
    dst.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dst / f"{name}.npz", images=z["images"][idx], **{k: z[k][idx] for k in keys})
    return len(idx)


def main(shared: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "plugins"
    note = (
        "# {name} (built-in subset)\n\n{count} items chosen at random (seed {seed}) from the public split "
        "of `{src}` in the shared data sets, made by `docs/builtin-data/make_subsets.py`. The full set is "
        "used by path. Source, licence and recipe of the original follow; the licence files are in "
        "`licenses/`.\n\n---\n\n"
    )
    jobs = [
        ("emoji32", shared / "emoji32", "emoji-32.npz", root / "artforge_hsv/data", 512, ["names", "kinds"]),
        ("tiles32", shared / "tiles32", "tiles-32.npz", root / "artforge_palette/data", 640, ["names"]),
        ("sigils64", shared / "sigils", "sigils-64.npz", root / "artforge_sigil/data", None,
         ["names", "categories"]),
    ]
    for name, src, fname, dst, n, keys in jobs:
        count = npz_subset(src / fname, name, dst, n, keys)
        readme = note.format(name=name, count=count, seed=SEED, src=f"{src.name}/{fname}")
        _copy_licences(src, dst, readme + (src / "README.md").read_text())
        print(name, count, (dst / f"{name}.npz").stat().st_size, "bytes")

    src = shared / "ascii-art"
    lines = (src / "ascii-art.jsonl").read_text().splitlines()
    rng = np.random.default_rng(SEED)
    cows = [i for i, line in enumerate(lines) if json.loads(line)["name"].startswith("cowsay/")]
    rest = [i for i in range(len(lines)) if i not in set(cows)]
    keep = sorted(cows + list(rng.choice(rest, 2000 - len(cows), replace=False)))
    dst = root / "artforge_ascii/data"
    dst.mkdir(parents=True, exist_ok=True)
    with gzip.open(dst / "ascii-art.jsonl.gz", "wt", encoding="utf-8") as fh:
        for i in keep:
            fh.write(lines[i] + "\n")
    readme = note.format(name="ascii-art", count=len(keep), seed=SEED, src="ascii-art/ascii-art.jsonl")
    readme = readme.replace("at random", f"at random (all {len(cows)} cowsay pictures kept)")
    _copy_licences(src, dst, readme + (src / "README.md").read_text())
    print("ascii-art", len(keep), (dst / "ascii-art.jsonl.gz").stat().st_size, "bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
