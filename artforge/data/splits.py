"""The train / validation / test split of a cache: a hash of each item's name, so adding images
to a data set never moves existing ones between splits. numpy and hashlib only (no torch), so
`artforge data info` can show it and stay fast."""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS = ("train", "val", "test", "all")


def leaves_no_training(val_fraction: float, test_fraction: float) -> bool:
    """Whether validation and test together take every item. Only asked of a test share: a
    val_fraction of 1 alone is allowed (training then stops with 'no training samples')."""
    return test_fraction > 0 and val_fraction + test_fraction >= 1


def _position(name: str) -> float:
    """Where a name falls in [0, 1): its BLAKE2b hash, scaled."""
    h = int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big")
    return h / 2**64


def is_validation(name: str, val_fraction: float) -> bool:
    """Deterministic split: a sample is held out when its name hashes below the fraction."""
    return _position(name) < val_fraction


def split_of(name: str, val_fraction: float, test_fraction: float = 0.0) -> str:
    """``val`` below ``val_fraction``, ``test`` in the next ``test_fraction``, else ``train``. The test
    share is cut from what would be training data, so the validation split does not depend on it."""
    h = _position(name)
    if h < val_fraction:
        return "val"
    return "test" if h < val_fraction + test_fraction else "train"


def split_index_sets(names: list[str], val_fraction: float, test_fraction: float = 0.0) -> dict[str, np.ndarray]:
    """Indices of ``names`` in each split (``train``, ``val``, ``test``) and ``all`` of them."""
    if not test_fraction >= 0:
        raise ValueError(f"test_fraction must be >= 0, not {test_fraction!r}")
    pos = np.array([_position(n) for n in names], dtype=np.float64)  # the same rule as split_of
    val = pos < val_fraction
    test = ~val & (pos < val_fraction + test_fraction)
    idx = np.arange(len(names))
    return {"train": idx[~val & ~test], "val": idx[val], "test": idx[test], "all": idx}


def split_indices(names: list[str], val_fraction: float, test_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices; items in the test share are in neither."""
    sets = split_index_sets(names, val_fraction, test_fraction)
    return sets["train"], sets["val"]
