"""Which ImageNet class a class render asks for where on its canvas.

A class render is an objective made only of class logits, each everywhere
(``objective=class_logit``) or weighted over the canvas (``interpolate``, ``atlas``, ``mask``
or ``where`` of class logits). Its layout says, for any window of the canvas, which class the
objective weighs most there: what a window of the picture should be classified as.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from render.objectives.activations import ClassLogit
from render.objectives.base import Masked, Objective
from render.objectives.spatial import WeightMap
from render.quality import window_grid

__all__ = ["ClassLayout"]

# Points sampled per window side to take a map's mean weight over the window.
_SAMPLES = 16
# Classes whose weight in a window is this close to the largest are ties: any of them is right.
_TIE = 1e-3


@dataclass(frozen=True)
class ClassLayout:
    """The class terms of a class render: ``(class_index, weight, map)``, the map None where
    the class counts everywhere."""

    terms: tuple[tuple[int, float, WeightMap | None], ...]

    @classmethod
    def of(cls, objective: Objective) -> ClassLayout | None:
        """The layout of ``objective``; None unless every term is a class logit with a positive
        weight."""
        terms = []
        for weight, term in objective.terms():
            where = term.weights if isinstance(term, Masked) else None
            leaf = term.objective if isinstance(term, Masked) else term
            if not isinstance(leaf, ClassLogit) or weight <= 0:
                return None
            terms.append((leaf.class_index, weight, where))
        return cls(tuple(terms))

    @property
    def classes(self) -> tuple[int, ...]:
        """The classes asked for, in the order of their first term."""
        return tuple(dict.fromkeys(index for index, _, _ in self.terms))

    def expected(self, size: Sequence[int], per_side: int) -> list[frozenset[int]]:
        """For each window of a level of a canvas of ``size`` (height, width), row by row as
        :func:`render.quality.recognition_by_level` cuts them (``per_side`` along the shorter
        side), the classes with the largest total weight over the window (several where they
        tie)."""
        height, width = size
        rows, columns = window_grid(size, per_side)
        h, w = height // rows, width // columns
        offsets = (torch.arange(_SAMPLES, dtype=torch.float64) + 0.5) / _SAMPLES
        # Canvas points (x, y) in [0, 1] of each window's samples: [windows, samples, samples, 2].
        ys = (torch.arange(rows, dtype=torch.float64)[:, None] + offsets) * h / height
        xs = (torch.arange(columns, dtype=torch.float64)[:, None] + offsets) * w / width
        grid_y = ys[:, None, :, None].expand(rows, columns, _SAMPLES, _SAMPLES)
        grid_x = xs[None, :, None, :].expand(rows, columns, _SAMPLES, _SAMPLES)
        points = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, _SAMPLES, _SAMPLES, 2)
        totals: dict[int, torch.Tensor] = {}
        for index, weight, where in self.terms:
            share = (
                torch.ones(points.shape[0], dtype=torch.float64)
                if where is None
                else where(points.float()).double().mean(dim=(1, 2))
            )
            totals[index] = totals.get(index, 0) + weight * share
        classes = list(totals)
        table = torch.stack([totals[c] for c in classes], dim=1)
        best = table.max(dim=1, keepdim=True).values
        ties = table >= best - _TIE * best.abs().clamp_min(1e-12)
        return [frozenset(c for c, tie in zip(classes, row, strict=True) if tie) for row in ties]
