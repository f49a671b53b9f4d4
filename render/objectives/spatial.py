"""Weight maps in canvas coordinates: where an objective counts, and how much.

A weight map gives every point of the canvas a weight; points are ``(x, y)`` in ``[0, 1]^2``,
``(0, 0)`` the top-left corner of the canvas, ``(1, 1)`` the bottom-right one. Because the map
lives in normalised canvas coordinates it means the same at every octave of a pyramid, and two
tiles that overlap read the same weights where they overlap.

``objective.where(map)`` (a ``Masked`` objective, render/objectives/base.py) weights the
objective's score map by the map at the canvas point each activation position looks at: the
renderer passes, for every pixel of the transformed tiles the model sees, where on the canvas it
comes from (:func:`canvas_points`: jitter, scale and rotation included), and each position's
weight is the mean of the map over its pixels (:func:`weights_like`). Scores that have no
positions (a class logit) are weighted per tile by the mean of the map over what the tile shows.

The maps know nothing of objectives: base.py imports this module, never the other way round.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from render.errors import UserError

__all__ = [
    "Box",
    "ImageMap",
    "Product",
    "WeightMap",
    "as_weight_map",
    "canvas_points",
    "weights_like",
]


class WeightMap(abc.ABC):
    """Weights over the canvas, read at canvas points ``(x, y)`` in ``[0, 1]^2``."""

    @abc.abstractmethod
    def _key(self) -> tuple[Any, ...]:
        """The values that define the map: equality and hashing use them."""

    @abc.abstractmethod
    def __call__(self, points: Tensor) -> Tensor:
        """Weights ``[...]`` at ``points`` ``[..., 2]`` (x, y)."""

    def __eq__(self, other: object) -> bool:
        # The type test implies isinstance; mypy 1.10 narrows `other` by isinstance alone.
        return (
            type(other) is type(self)
            and isinstance(other, WeightMap)
            and self._key() == other._key()
        )

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    def __mul__(self, other: WeightMap) -> WeightMap:
        return Product(self, other)


def _step(offset: Tensor, soft: float) -> Tensor:
    """0 before an edge, 1 after it, a linear ramp ``soft`` wide centred on it (hard if 0)."""
    if soft == 0:
        return (offset >= 0).to(offset.dtype)
    return (offset / soft + 0.5).clamp(0, 1)


class Box(WeightMap):
    """1 inside ``[x0, x1) x [y0, y1)``, 0 outside, with linear edges ``soft`` wide (x, y).

    Bounds may be infinite. Boxes that tile the canvas edge to edge with the same ``soft`` sum
    to exactly 1 everywhere, as long as ``soft`` is no wider than the narrowest box: each edge's
    ramp is one box's rise and its neighbour's fall.
    """

    def __init__(
        self,
        x: tuple[float, float] = (-math.inf, math.inf),
        y: tuple[float, float] = (-math.inf, math.inf),
        soft: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """A box in canvas coordinates; ``soft`` is the width of its edges along x and y."""
        self.bounds = (tuple(map(float, x)), tuple(map(float, y)))
        self.soft = tuple(map(float, soft))

    def _key(self) -> tuple[Any, ...]:
        return (self.bounds, self.soft)

    def __call__(self, points: Tensor) -> Tensor:
        weight = points.new_ones(points.shape[:-1])
        for axis, ((lo, hi), soft) in enumerate(zip(self.bounds, self.soft, strict=True)):
            coord = points[..., axis]
            weight = weight * (_step(coord - lo, soft) - _step(coord - hi, soft))
        return weight

    def __repr__(self) -> str:
        (x0, x1), (y0, y1) = self.bounds
        sx, sy = self.soft
        return f"box(x=[{x0:g}, {x1:g}), y=[{y0:g}, {y1:g}), soft=[{sx:g}, {sy:g}])"


class ImageMap(WeightMap):
    """Weights given as an image ``[H, W]`` stretched over the canvas (bilinear in between)."""

    def __init__(self, values: Tensor, label: str | None = None) -> None:
        """``values`` [H, W], usually in [0, 1]; row 0 is the top of the canvas. ``label``
        names the map in reprs (a mask file and colour).
        """
        if not isinstance(values, Tensor) or values.ndim != 2 or 0 in values.shape:
            raise UserError(f"a weight map must be a non-empty 2-D tensor [H, W], got {values!r}")
        self.values = values.detach().float().cpu().contiguous()
        self.label = label

    def _key(self) -> tuple[Any, ...]:
        return (tuple(self.values.shape), self.values.numpy().tobytes())

    def __call__(self, points: Tensor) -> Tensor:
        values = self.values.to(points.device, non_blocking=True)
        grid = (points.reshape(1, -1, 1, 2) * 2 - 1).to(values.dtype)
        # Clamped at the border: a tile's padding may look a little past the canvas edge.
        sampled = F.grid_sample(
            values[None, None], grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        return sampled.reshape(points.shape[:-1]).to(points.dtype)

    def __repr__(self) -> str:
        return self.label or f"image_map({self.values.shape[0]}x{self.values.shape[1]})"


class Product(WeightMap):
    """The product of two maps (``a.where(m1).where(m2)``)."""

    def __init__(self, first: WeightMap, second: WeightMap) -> None:
        """Weights ``first * second``."""
        self.maps = (first, second)

    def _key(self) -> tuple[Any, ...]:
        return self.maps

    def __call__(self, points: Tensor) -> Tensor:
        return self.maps[0](points) * self.maps[1](points)

    def __repr__(self) -> str:
        return f"{self.maps[0]!r} * {self.maps[1]!r}"


def as_weight_map(weights: object) -> WeightMap:
    """``weights`` as a map: a :class:`WeightMap`, or a 2-D tensor over the canvas."""
    if isinstance(weights, WeightMap):
        return weights
    if isinstance(weights, Tensor):
        return ImageMap(weights)
    raise UserError(f"where: weights must be a WeightMap or a 2-D tensor, got {weights!r}")


def canvas_points(
    transforms: torch.nn.Module,
    starts: Tensor,
    tile: tuple[int, int],
    canvas: Sequence[int],
    generator: torch.Generator | Sequence[torch.Generator],
    spans: Tensor | None = None,
) -> Tensor:
    """Canvas points ``[n, h, w, 2]`` of what the model sees of ``n`` tiles after ``transforms``.

    ``starts`` are the tiles' top-left pixels ``[n, 2]`` as (y, x), ``tile`` and ``canvas`` sizes
    (height, width); ``generator`` (one, or one per tile) is in the state the transforms of the
    tiles were drawn from. ``spans`` [n, 2] are the canvas pixels (height, width) each image
    covers when that is not its own size (a context view covers more).
    """
    locate = getattr(transforms, "locate", None)
    if locate is None:
        raise UserError(
            f"objectives that change across the canvas need transforms that can say where "
            f"each pixel comes from (a locate method); {type(transforms).__name__} has none"
        )
    # (x, y) in [-1, 1] of each tile; the pixel centres of a tile are at (2 i + 1) / size - 1.
    local = locate(starts.shape[0], tile[0], tile[1], generator)
    if spans is None:
        half = local.new_tensor([tile[1] / 2, tile[0] / 2])
    else:
        half = (spans.flip(-1) / 2).to(local.dtype)[:, None, None, :]
    size = local.new_tensor([canvas[1], canvas[0]])
    corner = starts.flip(-1).to(local.dtype)[:, None, None, :]
    return (corner + (local + 1) * half) / size


def weights_like(weights: WeightMap, points: Tensor, values: Tensor) -> Tensor:
    """The map's weight for every entry of ``values`` ([n] per tile, or [n, h, w] per position)."""
    at_pixels = weights(points)
    if values.ndim == 1:
        return at_pixels.mean(dim=(1, 2))
    # Each activation position covers a block of pixels: its weight is the map's mean there.
    return F.adaptive_avg_pool2d(at_pixels[:, None], (values.shape[-2], values.shape[-1]))[:, 0]
