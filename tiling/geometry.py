"""Per-axis tile geometry: where tiles start, how they are weighted, and how to move them in bulk.

Every function here is TorchScript-compatible because a scripted ``TilingModule`` re-targets
itself to a new base size inside ``split_into_tiles``.
"""

import math
from typing import List

import torch

WINDOWS = ("linear", "cosine")
PLACEMENTS = ("grid", "even")


def tile_starts(base: int, tile: int, stride: int, even: bool) -> List[int]:
    """Start offsets of the tiles along one axis.

    ``grid`` (the reference's layout): 0, stride, 2*stride, ... and a last tile flush with the
    far edge. ``even``: the same count, spread so that consecutive gaps differ by at most 1.
    """
    if base == tile:
        return [0]
    span = base - tile
    count = (span + stride - 1) // stride + 1
    if even:
        # Integer rounding of k * span / (count - 1), so both edges are hit exactly.
        return [(2 * k * span + count - 1) // (2 * (count - 1)) for k in range(count)]
    starts = [k * stride for k in range(count - 1)]
    starts.append(span)
    return starts


def _ramp(length: int, window: str) -> torch.Tensor:
    """Rising edge of a window over ``length`` overlapping pixels.

    Samples ``linspace(0, 1, length)``, the reference's ramp (to within 2**-13): a two-pixel
    overlap is a hard cut, as the reference's masks are. The falling edge is ``1 - ramp`` (not
    its mirror image), so even a one-pixel overlap keeps a partition of unity.
    """
    t = torch.linspace(0, 1, length, dtype=torch.float64)
    if window == "cosine":
        t = torch.sin(t * (math.pi / 2)) ** 2
    # Multiples of 2**-12 (a literal: TorchScript compiles this): a product of two weights then
    # has at most 24 significant bits, so where four tiles meet (a corner) the masks are exact
    # in float32 and sum to exactly 1.
    return torch.round(t * 4096.0) / 4096.0


def tile_weights(starts: List[int], tile: int, base: int, window: str) -> torch.Tensor:
    """1-D blend weights, one row per tile, that sum to 1 at every pixel of the axis.

    Each tile ramps up over its overlap with the previous tile and down over its overlap with
    the next; the rows are then divided by their pixel-wise sum, which makes the partition of
    unity exact even where three or more tiles overlap (overlaps above 50%).
    """
    count = len(starts)
    weights = torch.ones(count, tile, dtype=torch.float64)
    for k in range(count):
        if k > 0:
            left = starts[k - 1] + tile - starts[k]
            if left > 0:
                weights[k, :left] *= _ramp(left, window)
        if k < count - 1:
            right = starts[k] + tile - starts[k + 1]
            if right > 0:
                weights[k, tile - right :] *= 1 - _ramp(right, window)
    total = torch.zeros(base, dtype=torch.float64)
    for k in range(count):
        total[starts[k] : starts[k] + tile] += weights[k]
    for k in range(count):
        weights[k] = weights[k] / total[starts[k] : starts[k] + tile]
    return weights


def complement_runs(starts: List[int], tile: int, base: int) -> List[List[int]]:
    """Runs of pixels covered by exactly two tiles: ``[earlier, later, at_earlier, at_later, n]``.

    On such a run the earlier tile's weight is taken as ``1 - w`` of the later tile's weight
    ``w`` *in the working dtype* (see ``weights_in``): ``w + (1 - w)`` rounds to exactly 1 in
    any binary floating-point format, so a constant comes back bit for bit where two tiles meet.
    """
    cover = [0] * base
    for s in starts:
        for p in range(s, s + tile):
            cover[p] += 1
    runs: List[List[int]] = []
    for k in range(len(starts) - 1):
        # Where at most two tiles meet, the pair is always two consecutive tiles.
        lo, hi = starts[k + 1], min(starts[k] + tile, base)
        p = lo
        while p < hi:
            if cover[p] != 2:
                p += 1
                continue
            q = p
            while q < hi and cover[q] == 2:
                q += 1
            runs.append([k, k + 1, p - starts[k], p - starts[k + 1], q - p])
            p = q
    return runs


def weights_in(weights: torch.Tensor, runs: List[List[int]], dtype: torch.dtype) -> torch.Tensor:
    """``tile_weights`` rounded to ``dtype`` so that every two-tile overlap sums to exactly 1."""
    out = weights.to(dtype)
    for r in runs:
        out[r[0], r[2] : r[2] + r[4]] = 1 - out[r[1], r[3] : r[3] + r[4]]
    return out


def reference_ramps(starts: List[int], tile: int, base: int, ramp: int) -> List[List[int]]:
    """The reference release's per-tile ``[zeros, ramp]`` mask description along one axis.

    Kept as ``TilingModule._overlap`` for code written against the reference: its masks are
    ``ramp`` pixels of ``linspace(0, 1)`` after ``zeros`` pixels of 0 on each inner edge (the
    first tile repeats the second's entry). tiledream's own masks ramp over the whole overlap.
    """
    ramp = ramp if ramp > 1 else 0
    out: List[List[int]] = []
    for c in range(1, len(starts)):
        zeros, size = 0, ramp
        if c == len(starts) - 1:
            zeros = starts[c - 1] + tile - ramp - starts[c]
            # The reference ramps over the whole overlap of a lone pair of tiles.
            if c == 1 and 2 * tile > base:
                size, zeros = ramp + zeros, 0
        if len(out) == 0:
            out.append([zeros, size])
        out.append([zeros, size])
    return out


def max_cover(starts: List[int], tile: int, base: int) -> int:
    """Largest number of tiles that cover one pixel of the axis."""
    count = torch.zeros(base, dtype=torch.int64)
    for s in starts:
        count[s : s + tile] += 1
    return int(count.max().item())


def gather_runs(starts: List[int]) -> List[List[int]]:
    """Group tiles into runs of equally spaced starts: ``[first, count, 1, start, step]``.

    A run is read with one strided view (``unfold``), so splitting costs one copy per pair of
    runs instead of one per tile; the reference grid has at most two runs per axis.
    """
    runs: List[List[int]] = []
    i = 0
    while i < len(starts):
        step = starts[i + 1] - starts[i] if i + 1 < len(starts) else 1
        j = i + 1
        while j < len(starts) and starts[j] - starts[j - 1] == step:
            j += 1
        runs.append([i, j - i, 1, starts[i], step])
        i = j
    return runs


def scatter_slices(starts: List[int], tile: int, weights: torch.Tensor) -> List[List[int]]:
    """Group tiles into sets written with one strided, non-overlapping view each.

    Returns ``[first, count, index_step, start, position_step]``. Tiles in a set share their
    1-D weights (so one small weight patch serves all of them) and are at least a tile apart
    (so an in-place add through one ``unfold`` view never writes a pixel twice).
    """
    slices: List[List[int]] = []
    i = 0
    while i < len(starts):
        step = starts[i + 1] - starts[i] if i + 1 < len(starts) else tile
        j = i + 1
        while (
            j < len(starts)
            and starts[j] - starts[j - 1] == step
            and bool(torch.equal(weights[j], weights[i]))
        ):
            j += 1
        count = j - i
        phases = min((tile + step - 1) // step, count)
        # A phase holds a single tile when phases were capped by count; a tile-sized step then
        # keeps the view free of (claimed) overlap.
        position_step = max(step * phases, tile)
        for r in range(phases):
            members = (count - r + phases - 1) // phases
            slices.append([i + r, members, phases, starts[i] + r * step, position_step])
        i = j
    return slices
