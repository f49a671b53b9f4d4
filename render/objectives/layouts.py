"""Layouts of objectives over the canvas: ``interpolate`` from one edge to the other, ``atlas``.

Both build sums of ``objective.where(Box(...))`` whose boxes share their soft edges, so the
weights add up to 1 everywhere: the canvas is one picture whose subject changes from place to
place, not cells cut apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from render.errors import UserError
from render.objectives.activations import channel, class_logit
from render.objectives.base import Objective
from render.objectives.checks import require_index, require_objective, require_share
from render.objectives.spatial import Box

__all__ = ["atlas", "atlas_from_config", "interpolate", "objective_list"]

AXES = ("x", "y")


def _axis(axis: object, owner: str) -> int:
    if axis not in AXES:
        raise UserError(
            f"{owner}: axis must be 'x' (left to right) or 'y' (top to bottom), got {axis!r}"
        )
    return AXES.index(axis)


def _band(lo: float, hi: float, soft: float, axis: int) -> Box:
    """A box from ``lo`` to ``hi`` along ``axis`` (any extent across it)."""
    span = (lo, hi)
    if axis == 0:
        return Box(x=span, soft=(soft, 0.0))
    return Box(y=span, soft=(0.0, soft))


def interpolate(
    start: Objective, end: Objective, axis: str = "x", transition: float = 0.5
) -> Objective:
    """``start`` at the left (``axis="y"``: top) edge of the canvas, ``end`` at the other edge.

    Their weights cross-fade linearly over the middle ``transition`` of the canvas (1: from
    edge to edge, weights ``1 - x`` and ``x``; 0: a hard cut in the middle), so the ends show
    each objective alone and the middle the morph between them.
    """
    index = _axis(axis, "interpolate")
    start = require_objective(start, "interpolate: start")
    end = require_objective(end, "interpolate: end")
    transition = require_share(transition, "transition", "interpolate", "the canvas")
    # One soft edge centred on the canvas, the ramp of both weights.
    return start.where(_band(-math.inf, 0.5, transition, index)) + end.where(
        _band(0.5, math.inf, transition, index)
    )


def _edges(count: int) -> list[float]:
    """Cell bounds along one axis: the outer ones open, so the canvas edge holds no ramp."""
    return [-math.inf, *(i / count for i in range(1, count)), math.inf]


def _grid(grid: Sequence[int] | None, count: int) -> tuple[int, int]:
    """``(rows, columns)``: as given, or the squarest grid with columns >= rows."""
    if grid is None:
        columns = math.ceil(math.sqrt(count))
        return math.ceil(count / columns), columns
    if isinstance(grid, (str, bytes)) or len(grid) != 2:
        raise UserError(f"atlas: grid must be [rows, columns], got {grid!r}")
    rows, columns = (require_index(g, "grid", "atlas") for g in grid)
    if rows * columns < count:
        raise UserError(
            f"atlas: a grid of {rows}x{columns} has {rows * columns} cells for {count} "
            f"objectives; give a grid with at least {count} cells"
        )
    return rows, columns


def atlas(
    cells: Sequence[Objective], grid: Sequence[int] | None = None, blend: float = 0.5
) -> Objective:
    """A grid of objectives over the canvas, row by row from the top left.

    ``grid`` is ``[rows, columns]`` (default: the squarest that holds them all); neighbouring
    cells cross-fade over ``blend`` of a cell's width (or height) across their border.
    """
    if isinstance(cells, (str, bytes, Objective)) or not isinstance(cells, Sequence):
        raise UserError(f"atlas: cells must be a list of objectives, got {cells!r}")
    if not cells:
        raise UserError("atlas: the grid is empty; give at least one objective")
    rows, columns = _grid(grid, len(cells))
    blend = require_share(blend, "blend", "atlas", "a cell")
    xs, ys = _edges(columns), _edges(rows)
    soft = (blend / columns, blend / rows)
    terms = []
    for index, cell in enumerate(cells):
        row, column = divmod(index, columns)
        box = Box(x=(xs[column], xs[column + 1]), y=(ys[row], ys[row + 1]), soft=soft)
        terms.append(require_objective(cell, f"atlas: cells[{index}]").where(box))
    return sum(terms[1:], terms[0])


_RANGE = re.compile(r"^\s*range\(\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*$")


def _indices(values: object, name: str, owner: str) -> list[int]:
    """A list of indices, or a string ``"range(a, b[, step])"`` (Python's meaning)."""
    if isinstance(values, str):
        match = _RANGE.match(values)
        if match is None:
            raise UserError(
                f"{owner}: {name} must be a list of integers or 'range(start, stop[, step])', "
                f"got {values!r}"
            )
        start, stop, step = (int(g) if g else 1 for g in match.groups())
        return list(range(start, stop, max(step, 1)))
    if isinstance(values, (bytes, dict)) or not isinstance(values, Sequence):
        raise UserError(f"{owner}: {name} must be a list of integers, got {values!r}")
    return [require_index(v, name, owner) for v in values]


def objective_list(
    owner: str,
    keys: tuple[str, str],
    layer: str | None = None,
    channels: Sequence[int] | str | None = None,
    classes: Sequence[int] | str | None = None,
    cells: Sequence[Objective] | None = None,
    required: bool = True,
) -> list[Objective] | None:
    """The objectives listed by one of ``channels`` (of ``layer``), ``classes`` (logits) or
    ``cells`` (objectives); None when none is given and not ``required``.

    ``keys``: where the user sets them, for messages: the prefix of the three
    (``objective.``) and the key of the layer (``objective.layer``).
    """
    prefix, layer_key = keys
    given = [
        name
        for name, v in (("channels", channels), ("classes", classes), ("cells", cells))
        if v is not None
    ]
    if len(given) > 1 or (required and not given):
        raise UserError(
            f"{owner}: give {'exactly' if required else 'at most'} one of {prefix}channels "
            f"(with {layer_key}), {prefix}classes or {prefix}cells, got {given or 'none'}"
        )
    if channels is not None:
        if layer is None:
            raise UserError(f"{owner}: {prefix}channels needs {layer_key}")
        return [channel(layer, c) for c in _indices(channels, "channels", owner)]
    if classes is not None:
        return [class_logit(c) for c in _indices(classes, "classes", owner)]
    return None if cells is None else list(cells)


def atlas_from_config(
    layer: str | None = None,
    channels: Sequence[int] | str | None = None,
    classes: Sequence[int] | str | None = None,
    cells: Sequence[Objective] | None = None,
    grid: Sequence[int] | None = None,
    blend: float = 0.5,
) -> Objective:
    """``objective=atlas``: an atlas of the ``channels`` of ``layer``, of ``classes`` (logits),
    or of any ``cells`` (objective configs); exactly one of the three.
    """
    listed = objective_list(
        "atlas", ("objective.", "objective.layer"), layer, channels, classes, cells
    )
    assert listed is not None  # required
    return atlas(listed, grid, blend)
