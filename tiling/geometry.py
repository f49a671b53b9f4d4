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

    Samples at (k + 1) / (length + 1): strictly inside (0, 1), so every pixel of an overlap is
    blended, and a rising ramp plus its mirror image sums to exactly 1 at every pixel.
    """
    t = torch.arange(1, length + 1, dtype=torch.float64) / (length + 1)
    if window == "cosine":
        return torch.sin(t * (math.pi / 2)) ** 2
    return t


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
                weights[k, tile - right :] *= _ramp(right, window).flip(0)
    total = torch.zeros(base, dtype=torch.float64)
    for k in range(count):
        total[starts[k] : starts[k] + tile] += weights[k]
    for k in range(count):
        weights[k] = weights[k] / total[starts[k] : starts[k] + tile]
    return weights


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
