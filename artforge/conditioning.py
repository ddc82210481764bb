"""What conditional models share: the label vectors they were trained on, for sampling without --label.

A model that mixes in :class:`LabelBank` counts the distinct label vectors of its training
batches in two buffers (so they travel in checkpoints and ONNX manifests). ``sample`` without
``--label`` then draws label vectors as often as training saw them, which is what "a sample like
the training set" means for a conditional model.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from artforge.errors import ArtforgeError

LABEL_BANK = 512  # distinct label vectors remembered for sampling without --label


class LabelBank:
    """Mixin for an :class:`~artforge.models.ArtModel` whose class sets ``needs_labels``."""

    #: a conditional model to point users at when they pass --label to an unconditional one
    conditional_twin: ClassVar[str] = ""
    ema_copy: ClassVar[tuple[str, ...]] = ("label_rows", "label_counts")  # counts, not weights
    n_labels: int = 0

    def init_label_bank(self, label_columns: list[str]) -> None:
        """Call from ``__init__`` after ``ArtModel.__init__``; a no-op for unconditional models."""
        self.n_labels = len(label_columns) if self.needs_labels else 0
        if self.needs_labels and not self.n_labels:
            raise ArtforgeError(f"model {self.name!r} is conditional and needs labels; build the cache with "
                                "--labels (a .json/.csv file, dirs or npz:KEY)")
        if self.needs_labels:
            self.register_buffer("label_rows", torch.zeros(LABEL_BANK, self.n_labels))
            self.register_buffer("label_counts", torch.zeros(LABEL_BANK))

    def batch_labels(self, batch: dict[str, torch.Tensor], remember: bool = True) -> torch.Tensor | None:
        """The batch's labels as floats (None for unconditional models); counted while training
        (pass ``remember=False`` for all but one of a step's calls)."""
        if not self.needs_labels:
            return None
        y = batch.get("labels")
        if y is None:
            raise ArtforgeError(f"model {self.name!r} is conditional but the batch has no labels; "
                                "build the cache with --labels")
        y = y.float()
        if self.training and remember:
            self.remember_labels(y)
        return y

    @torch.no_grad()
    def remember_labels(self, y: torch.Tensor) -> None:
        """Count ``y``'s rows into the bank (new vectors take free slots; past the bank's size
        they are not remembered, but still train the model)."""
        rows, counts = self.label_rows, self.label_counts
        used = counts > 0
        eq = (y[:, None, :] == rows[None, :, :]).all(-1) & used[None, :]
        hit = eq.any(1)
        counts.index_add_(0, eq.float().argmax(1)[hit], torch.ones_like(y[hit, 0]))
        if not bool(hit.all()):
            new, inverse = torch.unique(y[~hit], dim=0, return_inverse=True)
            seen = torch.bincount(inverse, minlength=len(new)).float()
            free = (~used).nonzero().flatten()[: len(new)]
            rows[free] = new[: len(free)]
            counts[free] = seen[: len(free)]

    def draw_labels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``n`` label vectors drawn with the frequencies training saw them."""
        if float(self.label_counts.sum()) == 0:
            raise ArtforgeError(f"{self.name} saw no labels in training yet; pass --label NAME=VALUE")
        counts = self.label_counts if generator is None else self.label_counts.to(generator.device)
        pick = torch.multinomial(counts, n, replacement=True, generator=generator)
        return self.label_rows[pick.to(self.label_rows.device)]

    def check_labels(self, labels: torch.Tensor | None, n: int,
                     generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Labels for ``n`` pieces: as given (one row is repeated), or drawn when none are given."""
        if not self.needs_labels:
            if labels is not None:
                twin = f" (use {self.conditional_twin} for labels)" if self.conditional_twin else ""
                raise ArtforgeError(f"{self.name} is unconditional; drop --label{twin}")
            return None
        if labels is None:
            return self.draw_labels(n, generator)
        labels = labels.to(self.label_rows.device, torch.float32)
        if labels.shape[-1] != self.n_labels:
            raise ArtforgeError(f"{self.name} takes {self.n_labels} label columns, got {labels.shape[-1]}")
        return labels.expand(n, -1) if labels.shape[0] == 1 else labels

    def label_manifest(self) -> dict:
        """What the ONNX sampler needs to draw labels itself (see ``onnx_runtime.latent_decoder``)."""
        if not self.needs_labels:
            return {}
        used = self.label_counts > 0
        return {"label_rows": self.label_rows[used].cpu().tolist(),
                "label_weights": self.label_counts[used].cpu().tolist()}
