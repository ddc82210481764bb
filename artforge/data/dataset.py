"""Reading a token cache for training: a torch Dataset that fetches whole batches.

The HDF5 file is opened lazily inside each process that reads it (never before a DataLoader
forks its workers). The train/validation/test split hashes each sample's name, so adding images
to a data set never moves existing ones between splits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from artforge.data.cache import open_cache, text_items
from artforge.data.splits import (  # noqa: F401 - the split rule, importable from here as before
    SPLITS,
    is_validation,
    split_index_sets,
    split_indices,
    split_of,
)
from artforge.errors import BadInput, first_line

IN_MEMORY_BYTES = 512 * 1024 * 1024  # caches below this are read whole into each process


class TokenDataset(torch.utils.data.Dataset):
    """Samples of one split of a cache, as dicts of tensors.

    ``ds[i]`` gives one sample; ``ds.__getitems__(indices)`` (used by DataLoader) gives a whole
    batch ``{"tokens": LongTensor (B, *shape), "labels": FloatTensor (B, L), "index": ...}``
    in one read. Use :func:`collate` as the DataLoader's ``collate_fn``.
    """

    def __init__(self, path: str | os.PathLike, split: str = "train", val_fraction: float = 0.1,
                 in_memory: bool | None = None, test_fraction: float = 0.0):
        if split not in SPLITS:
            raise ValueError(f"split must be train, val, test or all, not {split!r}")
        self.path = Path(path)
        with open_cache(self.path) as f:  # read metadata, then close before any fork
            try:
                self.names_all = text_items(f["names"]).tolist()
            except (OSError, UnicodeDecodeError) as exc:  # a damaged chunk, or bytes that are not text
                raise BadInput(self.path, f"damaged artforge cache (names: {first_line(exc)}); check it with "
                                          "`artforge data verify`") from None
            self.codec_config = json.loads(f.attrs["codec"])
            self.token_shape = tuple(f["tokens"].shape[1:])
            self.vocab_size = int(f.attrs["vocab_size"])
            self.label_columns = json.loads(f["labels"].attrs["columns"]) if "labels" in f else []
            nbytes = f["tokens"].size * f["tokens"].dtype.itemsize
        #: indices of every split (train, val, test, all) of the cache, e.g. to report or check them
        self.split_sets = split_index_sets(self.names_all, val_fraction, test_fraction)
        self.indices = self.split_sets[split]
        self.split = split
        self.in_memory = nbytes <= IN_MEMORY_BYTES if in_memory is None else in_memory
        self._file = None
        self._tokens = None
        self._labels = None

    @property
    def split_sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.split_sets.items()}

    @property
    def has_labels(self) -> bool:
        return bool(self.label_columns)

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = state["_tokens"] = state["_labels"] = None
        return state

    def _open(self) -> None:
        import h5py

        self._file = h5py.File(self.path, "r", rdcc_nbytes=64 * 1024 * 1024)
        tok = self._file["tokens"]
        lab = self._file["labels"] if "labels" in self._file else None
        if self.in_memory:
            self._tokens = tok[:]
            self._labels = lab[:] if lab is not None else None
            if self._tokens.size and (int(self._tokens.max()) >= self.vocab_size or int(self._tokens.min()) < 0):
                bad = int(self._tokens.max()) if int(self._tokens.max()) >= self.vocab_size else int(self._tokens.min())
                raise BadInput(self.path, f"token {bad} is outside the vocabulary of "
                                          f"{self.vocab_size}; check it with `artforge data verify`")
        else:
            self._tokens, self._labels = tok, lab

    def _read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            return self._read_rows(rows)
        except OSError as exc:  # a damaged chunk: name the file, not the HDF5 filter
            raise BadInput(self.path, f"cannot read items ({exc}); check it with `artforge data verify`") from None

    def _read_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._file is None:
            self._open()
        if self.in_memory:
            return self._tokens[rows], (self._labels[rows] if self._labels is not None else None)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        uniq, inverse = np.unique(sorted_rows, return_inverse=True)
        tok = self._tokens[uniq][inverse]  # h5py wants increasing indices
        lab = self._labels[uniq][inverse] if self._labels is not None else None
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return tok[back], (lab[back] if lab is not None else None)

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        rows = self.indices[np.asarray(indices, dtype=np.int64)]
        tok, lab = self._read(rows)
        batch = {"tokens": torch.from_numpy(tok.astype(np.int64)), "index": torch.from_numpy(rows)}
        if lab is not None:
            batch["labels"] = torch.from_numpy(np.ascontiguousarray(lab, dtype=np.float32))
        return batch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def names(self) -> list[str]:
        return [self.names_all[i] for i in self.indices]


def collate(batch):
    """DataLoader ``collate_fn`` for :class:`TokenDataset` (batches arrive already built)."""
    return batch
