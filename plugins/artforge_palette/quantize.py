"""The numeric core of the palette codec: exact lookup, nearest colour, reduction, dithering.

Pixels travel as uint32 keys (RGBA bytes read little-endian), so an exact lookup is one
multiplicative hash, one gather and one compare per pixel. Pixels that are not palette colours
go to a nearest-colour search that runs once per *distinct* colour, in CIELAB.

Transparency is decided first and colour second: a pixel's alpha snaps to the nearest alpha
level the palette has (0 always, 255 for opaque colours, plus any translucent levels), and only
entries of that level compete on CIELAB distance. With an opaque palette this is the usual
"alpha < 128 is transparent" rule; translucent entries (shadows, glass) are kept distinct.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from artforge_palette.colorspace import lab_to_srgb, row_blocks, srgb_to_lab

ALPHA_WEIGHT = 100.0  # k-means feature: alpha 0..1 scaled like L* (0..100)
_CHUNK = 1 << 16  # distance-matrix elements per block: 512 KiB stays in cache, and products this
# small stay on one OpenBLAS thread (its threaded path is many times slower on a busy 2-core machine)
_LOOKUP_BLOCK = 1 << 18  # keys per block of the exact lookup


def pack(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 RGBA -> (...) uint32 keys; fully transparent pixels all become key 0."""
    rgba = np.ascontiguousarray(rgba, np.uint8)
    keys = rgba.view("<u4")[..., 0].astype(np.uint32, copy=False)
    return np.where(keys < (1 << 24), np.uint32(0), keys)


def unpack(keys: np.ndarray) -> np.ndarray:
    """uint32 keys -> (..., 4) uint8 RGBA."""
    return np.ascontiguousarray(np.asarray(keys, "<u4")).view(np.uint8).reshape(*np.shape(keys), 4)


class PaletteIndex:
    """Lookup structures for one palette (entry 0 is transparent, the rest distinct visible colours)."""

    def __init__(self, palette: np.ndarray):
        self.palette = np.ascontiguousarray(palette, np.uint8)
        self.keys = pack(self.palette)
        self.lab = srgb_to_lab(self.palette[:, :3])
        self._ref_sq = (self.lab[1:] ** 2).sum(1)
        self.levels = np.unique(self.palette[:, 3]).astype(np.int32)  # always starts with 0
        self.level_of = np.searchsorted(self.levels, self.palette[:, 3].astype(np.int32))
        self._build_hash()
        order = np.argsort(self.keys, kind="stable")
        self.sorted_keys, self.sorted_idx = self.keys[order], order

    def _build_hash(self) -> None:
        """A multiplicative hash with no collisions among the palette keys when one can be found."""
        n = len(self.keys)
        rng = np.random.default_rng(12345)
        best = None
        for bits in range(max(4, int(np.ceil(np.log2(n))) + 2), 23):
            for _ in range(24):
                mult = np.uint32(int(rng.integers(1, 1 << 32)) | 1)
                slots = (self.keys * mult) >> np.uint32(32 - bits)
                clashes = n - len(np.unique(slots))
                if best is None or clashes < best[0]:
                    best = (clashes, bits, mult, slots)
                if clashes == 0:
                    break
            if best[0] == 0:
                break
        _, bits, mult, slots = best
        table = np.zeros(1 << bits, np.int32)
        table[slots[::-1]] = np.arange(n - 1, -1, -1)  # on a clash the lowest index wins; others verify
        self.shift, self.mult, self.table = np.uint32(32 - bits), mult, table

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact matches: (index, found) for uint32 keys of any shape, a block at a time (the hash,
        its slots and the gathers as whole-image temporaries were ~37 bytes a pixel)."""
        keys = np.asarray(keys)
        flat = keys.reshape(-1)
        cand = np.empty(flat.shape, self.table.dtype)
        found = np.empty(flat.shape, bool)
        for s in range(0, len(flat), _LOOKUP_BLOCK):
            k, c, f = flat[s : s + _LOOKUP_BLOCK], cand[s : s + _LOOKUP_BLOCK], found[s : s + _LOOKUP_BLOCK]
            np.take(self.table, (k * self.mult) >> self.shift, out=c)
            np.equal(self.keys[c], k, out=f)
            if not f.all():  # hash clashes (only for huge palettes): binary search the rest
                miss = ~f
                pos = np.minimum(np.searchsorted(self.sorted_keys, k[miss]), len(self.sorted_keys) - 1)
                hit = self.sorted_keys[pos] == k[miss]
                c[miss] = np.where(hit, self.sorted_idx[pos], c[miss])
                f[miss] = hit
        return cand.reshape(keys.shape), found.reshape(keys.shape)

    def snap_alpha(self, alpha: np.ndarray) -> np.ndarray:
        """Alpha 0..255 -> index into ``levels`` of the nearest level (ties go to the more opaque)."""
        a = np.asarray(alpha, np.int32)
        hi = np.minimum(np.searchsorted(self.levels, a), len(self.levels) - 1)
        lo = np.maximum(hi - 1, 0)
        return np.where(a - self.levels[lo] < self.levels[hi] - a, lo, hi)

    def nearest(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Nearest entry for (P, 3) colours (uint8 or float 0..255) with (P,) alphas."""
        return self.nearest_lab(srgb_to_lab(rgb), alpha)

    def nearest_lab(self, lab: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Nearest entry for (P, 3) CIELAB colours with (P,) alphas (0..255)."""
        level = self.snap_alpha(alpha)
        out = np.zeros(len(level), np.int64)
        todo = np.nonzero(level > 0)[0]
        if len(todo) == 0:
            return out
        every = len(todo) == len(level)  # no transparent rows: skip the gathers
        lab, level = (np.ascontiguousarray(lab), level) if every else (lab[todo], level[todo])
        one_level = len(self.levels) == 2  # every visible entry competes (opaque palettes): no mask
        ref, ref_sq, ref_level = self.lab[1:], self._ref_sq, self.level_of[1:]
        for s, e in row_blocks(len(lab), max(2, _CHUNK // max(1, len(ref)))):
            d = ref_sq[None, :] - 2.0 * lab[s:e] @ ref.T
            if not one_level:
                d[ref_level[None, :] != level[s:e, None]] = np.inf
            best = d.argmin(1) + 1
            if every:
                out[s:e] = best
            else:
                out[todo[s:e]] = best
        return out

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, int]:
        """(..., 4) RGBA -> (indices, number of pixels that were not palette colours)."""
        keys = pack(images)
        idx, found = self.lookup(keys)
        moved = int(found.size - np.count_nonzero(found))
        if moved:
            miss = np.nonzero(~found.ravel())[0]
            uniq, inverse = np.unique(keys.ravel()[miss], return_inverse=True)
            rgba = unpack(uniq)
            flat = idx.ravel().copy()
            flat[miss] = self.nearest(rgba[:, :3], rgba[:, 3])[inverse.ravel()]
            idx = flat.reshape(keys.shape)
        return idx, moved


# -- gathering colours -----------------------------------------------------------------------------
class ColorCounter:
    """Streaming count of distinct visible colours (alpha > 0) over many batches."""

    def __init__(self):
        self.keys = np.zeros(0, np.uint32)
        self.counts = np.zeros(0, np.int64)
        self.pixels = 0
        self.images = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, images: np.ndarray) -> None:
        images = np.asarray(images, np.uint8)
        self.pixels += images.size // 4
        self.images += 1 if images.ndim == 3 else int(np.prod(images.shape[:-3]))
        keys = pack(images).ravel()
        keys = keys[keys != 0]
        if keys.size:
            u, c = np.unique(keys, return_counts=True)
            self._pending.append((u, c))
            self._pending_size += len(u)
            if self._pending_size > 4 * max(len(self.keys), 1 << 16):
                self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self.keys] + [u for u, _ in self._pending])
        counts = np.concatenate([self.counts] + [c for _, c in self._pending])
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], counts[order]
        start = np.concatenate([[True], keys[1:] != keys[:-1]])
        self.keys = keys[start]
        self.counts = np.add.reduceat(counts, np.nonzero(start)[0]) if len(keys) else counts
        self._pending, self._pending_size = [], 0

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct keys, their pixel counts)."""
        self._merge()
        return self.keys, self.counts


# -- reduction ------------------------------------------------------------------------------------
def features(rgba: np.ndarray) -> np.ndarray:
    """(P, 4) RGBA -> (P, 4) (L*, a*, b*, 100 * alpha): the space colours are reduced in."""
    return np.concatenate([srgb_to_lab(rgba[:, :3]), rgba[:, 3:4] / 255.0 * ALPHA_WEIGHT], 1)


def from_features(f: np.ndarray) -> np.ndarray:
    """Inverse of :func:`features`, rounded to RGBA bytes (alpha at least 1)."""
    rgb = np.clip(np.round(lab_to_srgb(f[:, :3])), 0, 255)
    a = np.clip(np.round(f[:, 3] / ALPHA_WEIGHT * 255.0), 1, 255)
    return np.concatenate([rgb, a[:, None]], 1).astype(np.uint8)


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum((x**2).sum(1)[:, None] - 2.0 * x @ c.T + (c**2).sum(1)[None, :], 0.0)


def _nearest_centre(x: np.ndarray, centres: np.ndarray, block: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """(index, squared distance) of each point's nearest centre, about ``block`` distances at a
    time: the full (points x centres) matrix of millions of colours would take gigabytes, and
    blocks of 2 MiB stay in cache and on one OpenBLAS thread (k-means on 65,536 points: 1.2 -> 0.8 s)."""
    assign = np.empty(len(x), np.intp)
    dist = np.empty(len(x))
    for s, e in row_blocks(len(x), max(2, block // max(1, len(centres)))):
        d = _sq_dist(x[s:e], centres)
        assign[s:e] = d.argmin(1)
        dist[s:e] = d[np.arange(len(d)), assign[s:e]]
    return assign, dist


def kmeans(x: np.ndarray, w: np.ndarray, k: int, iters: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means (k-means++ start, Lloyd steps) -> (centroids, assignment)."""
    rng = np.random.default_rng(seed)
    w = w.astype(np.float64)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.choice(len(x), p=w / w.sum())]
    d = _sq_dist(x, centres[:1])[:, 0]
    for i in range(1, k):
        p = w * d
        centres[i] = x[rng.choice(len(x), p=p / p.sum())] if p.sum() > 0 else x[rng.integers(len(x))]
        d = np.minimum(d, _sq_dist(x, centres[i : i + 1])[:, 0])
    assign = np.full(len(x), -1)
    for _ in range(iters):
        new, dist = _nearest_centre(x, centres)
        if np.array_equal(new, assign):
            break
        assign = new
        mass = np.bincount(assign, weights=w, minlength=k)
        for j in range(x.shape[1]):
            centres[:, j] = np.bincount(assign, weights=w * x[:, j], minlength=k) / np.maximum(mass, 1e-12)
        empty = np.nonzero(mass == 0)[0]
        if len(empty):  # re-seed empty clusters at the worst-served colours
            err = w * dist
            centres[empty] = x[np.argsort(-err)[: len(empty)]]
    return centres, assign


MAX_POINTS = 1 << 16  # distinct colours k-means takes one by one; above it, colours are binned
MAX_BINS = 1 << 16  # most bins k-means is given: the finest depth of _BIN_BITS with no more than these
_BIN_BITS = ((5, 4), (4, 4), (4, 3), (3, 3), (3, 2), (2, 2), (2, 1), (1, 1))  # (bits per RGB channel, alpha bits)


def _bin_keys(rgba: np.ndarray, rgb_bits: int, alpha_bits: int) -> np.ndarray:
    """Bin number of each colour: the top bits of R, G, B and alpha, side by side."""
    r, g, b, a = (rgba[:, i].astype(np.int64) for i in range(4))
    cut = 8 - rgb_bits
    return ((((r >> cut) << rgb_bits | g >> cut) << rgb_bits | b >> cut) << alpha_bits) | a >> (8 - alpha_bits)


def _binned(rgba: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Many distinct colours -> (count-weighted mean features of RGB + alpha bins, bin weights).

    Bins are 5-bit RGB + 4-bit alpha when that makes at most ``MAX_BINS`` non-empty bins (always
    for opaque colours, 2^15 possible bins; photos), else the next coarser depth that does:
    translucent noise fills all 2^19 of those bins, and k-means on 8x ``MAX_POINTS`` points took
    minutes and gigabytes. A cluster's mean over bins is exactly its mean over the colours; only
    the assignment moves a bin's colours together, a fraction of a palette step."""
    for rgb_bits, alpha_bits in _BIN_BITS:
        key = _bin_keys(rgba, rgb_bits, alpha_bits)
        present = np.zeros(1 << (3 * rgb_bits + alpha_bits), bool)
        present[key] = True
        if np.count_nonzero(present) <= MAX_BINS:
            break
    inv = (np.cumsum(present) - 1)[key]  # rank among non-empty bins, in key order like np.unique's
    w = np.bincount(inv, weights=counts)
    f = features(rgba)
    mean = np.stack([np.bincount(inv, weights=counts * f[:, j]) for j in range(f.shape[1])], 1) / w[:, None]
    return mean, w


def reduce_colors(keys: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Distinct colours with pixel counts -> at most ``n`` visible RGBA colours, most used first.

    Exact colours when there are no more than ``n``; otherwise weighted k-means in
    (L*, a*, b*, alpha) space, so frequent colours pull the palette towards themselves.
    """
    rgba = unpack(keys)
    if len(keys) <= n:
        order = np.lexsort((keys, -counts))
        return rgba[order]
    # Opaque and translucent colours are reduced apart (slots shared by pixel count), so an
    # opaque pixel never lands on a colour that is slightly see-through.
    opaque = rgba[:, 3] == 255
    share = counts[~opaque].sum() / counts.sum()
    n_trans = 0 if not (~opaque).any() else int(np.clip(round(n * share), 1, max(1, n - 1)))
    if opaque.all() or n == 1:
        n_trans = 0 if opaque.any() else n
    parts = []
    for sel, k in ((opaque, n - n_trans), (~opaque, n_trans)):
        if k == 0 or not sel.any():
            continue
        if sel.sum() <= k:
            parts.append((rgba[sel], counts[sel].astype(np.float64)))
            continue
        if sel.sum() > MAX_POINTS:
            points, weights = _binned(rgba[sel], counts[sel].astype(np.float64))
            centres, assign = kmeans(points, weights, k)
        else:
            weights = counts[sel]
            centres, assign = kmeans(features(rgba[sel]), weights, k)
        colors = from_features(centres)
        colors[:, 3] = 255 if sel is opaque else np.minimum(colors[:, 3], 254)
        parts.append((colors, np.bincount(assign, weights=weights, minlength=k)))
    colors = np.concatenate([p[0] for p in parts])
    mass = np.concatenate([p[1] for p in parts])
    order = np.argsort(-mass, kind="stable")
    colors, mass = colors[order], mass[order]
    colors = colors[mass > 0]
    _, first = np.unique(pack(colors), return_index=True)  # rounding can merge two centres
    return colors[np.sort(first)]


# -- dithering -----------------------------------------------------------------------------------
BAYER4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float64)


def bayer_spread(index: PaletteIndex) -> float:
    """How far ordered dithering pushes a channel: the typical gap between neighbouring colours."""
    rgb = index.palette[1:, :3].astype(np.float64)
    if len(rgb) < 2:
        return 0.0
    d = np.sqrt(_sq_dist(rgb, rgb))
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(1)))


def dither_bayer(images: np.ndarray, index: PaletteIndex) -> np.ndarray:
    """Ordered 4x4 Bayer dithering; pixels that are already palette colours stay as they are."""
    n, h, w, _ = images.shape
    keys = pack(images)
    idx, found = index.lookup(keys)
    spread = bayer_spread(index)
    offset = (BAYER4[np.arange(h)[:, None] % 4, np.arange(w)[None, :] % 4] + 0.5) / 16.0 - 0.5
    rgb = np.clip(images[..., :3].astype(np.float64) + spread * offset[None, :, :, None], 0, 255)
    miss = ~found
    if miss.any():
        q = np.round(rgb[miss]).astype(np.uint8)
        a = images[..., 3][miss]
        uniq, inverse = np.unique(pack(np.concatenate([q, a[:, None]], 1)), return_inverse=True)
        u = unpack(uniq)
        idx = idx.copy()
        idx[miss] = index.nearest(u[:, :3], u[:, 3])[inverse.ravel()]
    return idx


LAB_LOW, LAB_HIGH = np.array([0.0, -128.0, -128.0]), np.array([100.0, 127.0, 127.0])


def _diagonal_order(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels ordered by anti-diagonal ``t = x + 2y`` (y ascending within one): (flat index
    ``y * w + x`` of each position, first y of each diagonal, start of each diagonal plus the end).
    Along a diagonal the flat index grows by ``w - 2`` per row, so it is one repeat and one ramp;
    int32 arithmetic may wrap on the way, but the results are below 2^31, so they come out exact."""
    t = np.arange(w + 2 * (h - 1))
    ylo = np.maximum(0, (t - w + 2) // 2)  # the smallest y with x = t - 2y <= w - 1
    size = np.minimum(h - 1, t // 2) - ylo + 1
    start = np.concatenate([[0], np.cumsum(size)])
    dtype = np.int32 if h * w < 2**31 else np.int64
    order = np.arange(h * w, dtype=dtype)
    order *= w - 2
    order += np.repeat((t + (w - 2) * (ylo - start[:-1])).astype(dtype), size)  # wraps back into range
    return order, ylo, start


def dither_floyd(images: np.ndarray, index: PaletteIndex) -> np.ndarray:
    """Floyd-Steinberg error diffusion (7/16 right, 3/16, 5/16, 1/16 below) in CIELAB.

    The error is measured in the same space the nearest colour is chosen in, so it pushes
    towards colours that look closer, not towards whatever sRGB channel overflowed; the target
    is kept inside the Lab box so a palette that lacks a hue cannot make the error run away.
    A pixel needs its left neighbour and the three above it, so all pixels with the same
    ``x + 2y`` are independent: each step handles that whole anti-diagonal of every image at
    once (W + 2H - 2 numpy steps instead of N*H*W Python ones). Pixels that are already palette
    colours are kept and take no error; pixels that turn transparent pass none on.

    The pixels are stored diagonal by diagonal, so a step reads and writes contiguous slices
    (the error's neighbours on diagonals t+1..t+3 are runs too) instead of gathering a diagonal
    across H rows by fancy indexing; the arithmetic and its order are unchanged, bit for bit.
    """
    n, h, w, _ = images.shape
    order, ylo, start = _diagonal_order(h, w)
    skewed = images.reshape(n, h * w, 4)[:, order]
    idx, found = index.lookup(pack(skewed))  # int32 indices from the hash table
    work = srgb_to_lab(skewed[..., :3])
    alpha = skewed[..., 3].copy()
    del skewed
    yhi = ylo + np.diff(start) - 1
    steps = len(ylo)
    spread = ((0, 1, 7 / 16), (1, 1, 3 / 16), (1, 2, 5 / 16), (1, 3, 1 / 16))  # (dy, dt, weight): dt = dx + 2 dy
    for t in range(steps):
        s0, s1 = start[t], start[t + 1]
        free = ~found[:, s0:s1]  # (N, k)
        if not free.any():
            continue
        target = np.clip(work[:, s0:s1], LAB_LOW, LAB_HIGH)  # (N, k, 3)
        if free.all():  # the usual case in photos: no gather, the same rows in the same order
            chosen = index.nearest_lab(target.reshape(-1, 3), alpha[:, s0:s1].ravel())
            idx[:, s0:s1] = chosen.reshape(free.shape)
            err = np.where((chosen > 0)[:, None], target.reshape(-1, 3) - index.lab[chosen], 0.0).reshape(target.shape)
        else:
            fi = np.nonzero(free)
            chosen = index.nearest_lab(target[fi], alpha[:, s0:s1][fi])
            idx[:, s0:s1][fi] = chosen
            err = np.zeros_like(target)
            err[fi] = np.where((chosen > 0)[:, None], target[fi] - index.lab[chosen], 0.0)
        for dy, dt, wgt in spread:
            t2 = t + dt
            if t2 >= steps:
                continue
            a, b = max(ylo[t] + dy, ylo[t2]), min(yhi[t] + dy, yhi[t2])  # target rows on diagonal t2
            if a > b:
                continue
            d0, e0 = start[t2] + a - ylo[t2], a - dy - ylo[t]
            work[:, d0 : d0 + b - a + 1] += wgt * err[:, e0 : e0 + b - a + 1]
    del work
    out = np.empty((n, h * w), np.int64)
    out[:, order] = idx
    return out.reshape(n, h, w)


def iter_batches(batches: Iterable) -> Iterable[np.ndarray]:
    """Accept arrays or lists of differently sized images from ``fit``'s stream."""
    for b in batches:
        if isinstance(b, list | tuple):
            yield from (np.asarray(x) for x in b)
        else:
            yield np.asarray(b)
