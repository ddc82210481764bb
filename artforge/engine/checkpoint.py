"""Checkpoints: plain dicts of tensors and primitives, written atomically, read weights-only."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from artforge.errors import BadInput, first_line
from artforge.fsutil import atomic_path, check_reachable, check_readable

FORMAT = "artforge-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (plus format markers) so a crash never leaves a half checkpoint."""
    state = {"format": FORMAT, "version": VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; anything else is a one-line BadInput. ``mmap``: tensors
    are mapped from the file, read only when used."""
    path = Path(path)
    check_reachable(path)
    if not path.is_file():
        raise BadInput(path, "no such checkpoint")
    check_readable(path)  # else is_zipfile would call it a truncated archive
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; this also catches a truncated one
        raise BadInput(path, "not an artforge checkpoint (not a torch checkpoint archive, or a truncated one)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # any file can be handed in: whatever the loader raises is bad input
        first = first_line(exc)
        if first.startswith("Weights only load failed"):
            first = "it holds Python objects, not only tensors and plain values"
        raise BadInput(path, f"not a readable artforge checkpoint ({first})") from None
    # the markers' types first: a tensor compared with == is a tensor, and its truth an internal error
    if not isinstance(state, dict) or not isinstance(state.get("format"), str) or state["format"] != FORMAT:
        raise BadInput(path, "not an artforge checkpoint (no artforge format marker)")
    version = state.get("version")
    if type(version) is not type(VERSION) or version != VERSION:
        shown_version = version if isinstance(version, int | float | str | None) else type(version).__name__
        raise BadInput(path, f"checkpoint version {shown_version} is not {VERSION}")
    return state


def fit_error(exc: Exception) -> str:
    """The telling line of a ``load_state_dict`` error (its first line only names the class)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0])[:200]
