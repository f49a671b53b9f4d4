"""How a render is judged, by measurement (the design's "How a picture is judged").

- **Composed**: :func:`recognition_by_level` cuts the canvas into windows at every level (the
  whole image, 2x2, 4x4, ... down to about one tile), resizes each to the model's input size
  and classifies it.
- **Sharp at full size**: :func:`fine_detail` is what a 2x down-and-up resample removes.
- **Seamless**: :func:`seam_ratio` compares the mean pixel step across tile edges with the
  mean step elsewhere.
- **One picture, not a wallpaper**: :func:`arrangement_kept` shuffles the canvas's blocks at
  each level and asks how much of the whole image's class survives. Window classification
  rewards a wallpaper of small copies as much as a composed picture (every window holds a
  copy); shuffling tells them apart: a wallpaper is still its class with its blocks in another
  order, a picture whose class lies in how its parts are arranged is not.
  :func:`composition_kept` says how much of a pyramid's first octave (its composition) is
  still in the final canvas's low frequencies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import Tensor

from render.models import LOGITS, FeatureModel
from tiling import TilingModule

#: Windows of a level are at least this share of a tile on their short side.
SMALLEST_WINDOW = 0.75


def load_picture(path: str | os.PathLike[str]) -> Tensor:
    """A picture file as [1, 3, H, W] floats in [0, 1] (RGB)."""
    with Image.open(path) as picture:
        image = TF.to_dtype(TF.to_image(picture.convert("RGB")), torch.float32, scale=True)
    return image[None].as_subclass(Tensor)


def window_levels(size: Sequence[int], tile: Sequence[int]) -> list[int]:
    """Windows per side of each level, 1, 2, 4, ..., down to windows of about one tile."""
    levels = [1]
    while min(s / (2 * levels[-1]) / t for s, t in zip(size, tile, strict=True)) >= SMALLEST_WINDOW:
        levels.append(2 * levels[-1])
    return levels


def window_grid(size: Sequence[int], per_side: int) -> tuple[int, int]:
    """Rows and columns of a level's windows on a canvas of ``size`` (height, width):
    ``per_side`` along the shorter side and as many about-square windows along the longer, so
    a classifier sees no window squeezed (a square canvas: ``per_side`` x ``per_side``)."""
    height, width = size
    if height <= width:
        return per_side, max(per_side, round(per_side * width / height))
    return max(per_side, round(per_side * height / width)), per_side


def windows(canvas: Tensor, per_side: int, columns: int | None = None) -> Tensor:
    """The ``per_side`` x ``per_side`` (or x ``columns``) grid of windows of ``canvas``
    [1, C, H, W], row by row.

    Windows are equal, the last row and column ending at the border (a few pixels may go
    uncovered when the size does not divide).
    """
    rows, columns = per_side, per_side if columns is None else columns
    _, _, height, width = canvas.shape
    h, w = height // rows, width // columns
    return torch.cat(
        [
            canvas[:, :, i * h : (i + 1) * h, j * w : (j + 1) * w]
            for i in range(rows)
            for j in range(columns)
        ]
    )


@torch.no_grad()
def classify(model: FeatureModel, images: Tensor, size: int = 224, batch: int = 16) -> Tensor:
    """Logits [N, classes] of ``images`` [N, 3, h, w] in [0, 1], each resized to ``size``."""
    resized = TF.resize(images, [size, size], antialias=True).clamp(0, 1)
    return torch.cat(
        [model.capture(part, [LOGITS])[LOGITS] for part in resized.split(batch)]
    ).float()


def recognition_by_level(
    model: FeatureModel,
    canvas: Tensor,
    classes: int | Callable[[int], Sequence[Collection[int]]],
    tile: Sequence[int],
    size: int = 224,
) -> dict[int, float]:
    """Share of the windows classified as their class at each level (keyed by the windows
    along the shorter side; :func:`window_grid` gives the grid).

    ``classes`` is the class of every window, or a function of that key giving each window's
    right classes, row by row (a layout of classes over the canvas).
    """
    shares = {}
    for per_side in window_levels(canvas.shape[-2:], tile):
        grid = windows(canvas, *window_grid(canvas.shape[-2:], per_side))
        top = classify(model, grid, size).argmax(dim=1).tolist()
        right = [{classes}] * len(top) if isinstance(classes, int) else classes(per_side)
        shares[per_side] = sum(t in r for t, r in zip(top, right, strict=True)) / len(top)
    return shares


def shuffle_blocks(canvas: Tensor, per_side: int, generator: torch.Generator) -> Tensor:
    """``canvas`` [1, C, H, W] cut into ``per_side`` x ``per_side`` equal blocks put back in a
    random order in which no block keeps its place (cropped to a multiple of ``per_side``).
    """
    count = per_side * per_side
    blocks = windows(canvas, per_side)
    order = torch.randperm(count, generator=generator)
    while count > 1 and bool((order == torch.arange(count)).any()):
        order = torch.randperm(count, generator=generator)
    rows = blocks[order].split(per_side)
    return torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)[None]


def class_evidence(logits: Tensor, class_index: int) -> Tensor:
    """The class's logit over the mean logit, per image: what softmax sees, unsaturated."""
    return logits[:, class_index] - logits.mean(dim=1)


def arrangement_kept(
    model: FeatureModel,
    canvas: Tensor,
    class_index: int,
    tile: Sequence[int],
    shuffles: int = 4,
    size: int = 224,
    seed: int = 0,
) -> dict[int, float]:
    """Share of the whole image's class evidence left when its blocks are shuffled, per level.

    For each level after the whole image (2x2, 4x4, ... blocks, as :func:`window_levels`),
    the whole canvas with its blocks shuffled (``shuffles`` orders, none leaving a block in
    place) is classified at ``size``; its mean :func:`class_evidence` over the unshuffled
    canvas's. About 1 at a level whose blocks each hold whole copies of the subject (a
    wallpaper); well below 1 where the subject spans blocks (a composed picture). Meaningful
    when the whole canvas is its class (its evidence is large and positive).
    """
    generator = torch.Generator().manual_seed(seed)
    whole = class_evidence(classify(model, canvas, size), class_index)
    kept = {}
    for per_side in window_levels(canvas.shape[-2:], tile)[1:]:
        shuffled = torch.cat([shuffle_blocks(canvas, per_side, generator) for _ in range(shuffles)])
        evidence = class_evidence(classify(model, shuffled, size), class_index)
        kept[per_side] = float(evidence.mean() / whole[0])
    return kept


def composition_kept(reference: Tensor, canvas: Tensor) -> float:
    """Correlation of ``reference`` [1, 3, h, w] (a pyramid's first octave) with ``canvas``
    [1, 3, H, W] shrunk to its size (antialiased): 1 when the final render keeps the first
    octave's composition, about 0 when the finer octaves replaced it (a wallpaper).
    """
    small = TF.resize(canvas, list(reference.shape[-2:]), antialias=True)
    a = reference - reference.mean(dim=(-2, -1), keepdim=True)
    b = small - small.mean(dim=(-2, -1), keepdim=True)
    return float((a * b).sum() / (a.square().sum() * b.square().sum()).sqrt().clamp(min=1e-12))


def fine_detail(canvas: Tensor) -> float:
    """Finest octave: RMS of ``canvas`` minus its 2x down-and-up resample (antialiased)."""
    height, width = canvas.shape[-2:]
    down = TF.resize(canvas, [height // 2, width // 2], antialias=True)
    up = TF.resize(down, [height, width], antialias=True)
    return float((canvas - up).square().mean().sqrt())


def step_ratio_where(canvas: Tensor, where: Tensor) -> float:
    """Mean absolute pixel step (down and right) where ``where`` [H, W] holds over the mean
    step everywhere: about 1 when nothing is cut there (the border of two regions of a mask).
    """
    dy = (canvas[..., 1:, :-1] - canvas[..., :-1, :-1]).abs().mean(dim=(0, 1))
    dx = (canvas[..., :-1, 1:] - canvas[..., :-1, :-1]).abs().mean(dim=(0, 1))
    steps = dy + dx
    return float(steps[where[:-1, :-1]].mean() / steps.mean())


def tile_edges(tiling: TilingModule) -> tuple[list[int], list[int]]:
    """Rows and columns where a tile begins or ends (the pixel step before them may seam)."""
    (height, width), (th, tw) = tiling._base_size, tiling._tile_size
    coords = tiling.tile_coords()
    starts_y, starts_x = {y for y, _ in coords}, {x for _, x in coords}
    rows = sorted({e for s in starts_y for e in (s, s + th) if 0 < e < height})
    cols = sorted({e for s in starts_x for e in (s, s + tw) if 0 < e < width})
    return rows, cols


def seam_ratio(canvas: Tensor, tiling: TilingModule, reach: int | None = None) -> float:
    """Mean absolute pixel step across tile edges over the mean step everywhere (1: no seam).

    With ``reach``, over the mean step of the rows and columns within ``reach`` pixels of each
    edge instead: a picture whose content changes at a tile edge (the border of two cells of
    an atlas) is busier there, and only a step larger than its neighbours' is a seam.
    """
    dy = (canvas[..., 1:, :] - canvas[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    dx = (canvas[..., :, 1:] - canvas[..., :, :-1]).abs().mean(dim=(0, 1, 2))
    rows, cols = tile_edges(tiling)
    if not rows and not cols:
        return 1.0
    steps = torch.cat([dy[[r - 1 for r in rows]], dx[[c - 1 for c in cols]]])
    if reach is None:
        return float(steps.mean() / torch.cat([dy, dx]).mean())
    around = [
        torch.cat([d[max(e - 1 - reach, 0) : e - 1], d[e : e + reach]])
        for d, edges in ((dy, rows), (dx, cols))
        for e in edges
    ]
    return float(steps.mean() / torch.cat(around).mean())
