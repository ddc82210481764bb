"""Figures for binary glyphs: the corruption the sigil denoiser learns to undo and the 3x3 median
filter it is measured against; and, for generated glyphs, Fréchet distances and a nearest-glyph
overlap.

No pretrained feature network is downloaded, so the distances are taken between Gaussians fitted
to two hand-made views of a glyph: ``pooled`` (where the ink sits, 8x8 cells) and ``strokes``
(the share of each of the 16 2x2 pixel patterns, at full and half size: edges, corners, stroke
ends and speckle each have their own patterns, wherever they are). Pixels drawn independently
with each pixel's real ink frequency match ``pooled`` well and ``strokes`` not at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def corrupt(tokens: torch.Tensor, noise: float, holes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each pixel with probability ``noise``, then blank ``holes`` squares (side H/8) per image.

    The flips are the speckle a generator leaves; the blanked squares are broken strokes."""
    B, H, W = tokens.shape
    dev = tokens.device
    out = tokens.clone()
    if noise > 0:
        flip = torch.rand(B, H, W, generator=generator, device=dev) < noise
        out = torch.where(flip, 1 - out, out)
    side = max(1, H // 8)
    if holes > 0:
        ys = torch.randint(0, H - side + 1, (B, holes, 1, 1), generator=generator, device=dev)
        xs = torch.randint(0, W - side + 1, (B, holes, 1, 1), generator=generator, device=dev)
        r = torch.arange(H, device=dev).view(1, 1, H, 1)
        c = torch.arange(W, device=dev).view(1, 1, 1, W)
        hole = ((r >= ys) & (r < ys + side) & (c >= xs) & (c < xs + side)).any(1)
        out = out.masked_fill(hole, 0)
    return out


def median3(tokens: torch.Tensor) -> torch.Tensor:
    """3x3 median filter of binary grids (a majority of the 9 pixels; edges replicated)."""
    x = F.pad(tokens.float()[:, None], (1, 1, 1, 1), mode="replicate")
    return (F.avg_pool2d(x, 3, stride=1)[:, 0] > 0.5).to(tokens.dtype)


def pooled(ink: torch.Tensor, size: int = 8) -> torch.Tensor:
    """(B, H, W) ink -> (B, size * size) float64: the ink share of each cell."""
    return F.adaptive_avg_pool2d(ink.double()[:, None], size).flatten(1)


def _patterns(ink: torch.Tensor) -> torch.Tensor:
    x = ink.long()
    code = x[:, :-1, :-1] + 2 * x[:, :-1, 1:] + 4 * x[:, 1:, :-1] + 8 * x[:, 1:, 1:]
    return torch.bincount((code.flatten(1) + 16 * torch.arange(len(x), device=x.device)[:, None]).flatten(),
                          minlength=16 * len(x)).view(len(x), 16).double() / code[0].numel()


def strokes(ink: torch.Tensor) -> torch.Tensor:
    """(B, H, W) binary ink -> (B, 32) float64: per cent of 2x2 windows showing each pattern, at
    full size and at half size (2x2 blocks with at least 3 ink pixels count as ink)."""
    half = F.avg_pool2d(ink.double()[:, None], 2)[:, 0] > 0.5
    return torch.cat([_patterns(ink), _patterns(half)], 1) * 100


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (float64)."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    # tr sqrt(ca cb) = the sum of the square roots of the eigenvalues of sqrt(ca) cb sqrt(ca), symmetric
    w, v = torch.linalg.eigh(ca)
    root = (v * w.clamp_min(0).sqrt()) @ v.T
    mid = torch.linalg.eigvalsh(root @ cb @ root).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + ca.trace() + cb.trace() - 2 * mid)


def iou_matrix(ink: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(A, H, W), (B, H, W) binary ink -> (A, B) ink intersection-over-union of every pair (same
    position, no shifting; 0 for two blank glyphs)."""
    a, b = ink.flatten(1).float(), ref.flatten(1).float()
    inter = a @ b.T
    return inter / (a.sum(1, keepdim=True) + b.sum(1)[None] - inter).clamp_min(1)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean ink intersection-over-union of the glyph pairs (a[i], b[i])."""
    a, b = a.flatten(1).float(), b.flatten(1).float()
    both = (a * b).sum(1)
    return float((both / (a.sum(1) + b.sum(1) - both).clamp_min(1)).mean())


def nearest(ink: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of ``ink``'s glyphs, the ink intersection-over-union with the closest glyph of
    ``ref`` (see ``iou_matrix``) and that glyph's index."""
    ious, idx = [], []
    for part in ink.split(256):
        best = iou_matrix(part, ref).max(1)
        ious.append(best.values)
        idx.append(best.indices)
    if not ious:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    return torch.cat(ious), torch.cat(idx)


def nearest_iou(ink: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean nearest-glyph ink IoU (see ``nearest``): 1 for copies, about 0.25 for pixel noise of the
    glyphs' density."""
    iou, _ = nearest(ink, ref)
    return float(iou.mean()) if len(iou) else float("nan")
