"""A run's render judged by the network that made it and by one that never rendered it.

The design's "How a picture is judged": a class render is its class in the windows of every
level (:func:`render.quality.recognition_by_level`: the whole image, quarters, ... down to
about one tile), sharp at full size and seamless; and it should be its class to a second trained
network too (transferability, as MaCo's evaluation measures it), or it is closer to an
adversarial example of its own network than to a picture. The judge is EfficientNet-Lite2
(:func:`render.models.efficientnet_lite2`: ImageNet weights from its own package, trained
apart from the Lite0 that renders by default, shown windows at its input size of 260).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import Tensor

from render.config import build
from render.errors import UserError
from render.gallery import PICTURE
from render.models import FeatureModel, efficientnet_lite2
from render.objectives.class_layout import ClassLayout
from render.quality import (
    fine_detail,
    load_picture,
    recognition_by_level,
    seam_ratio,
    window_grid,
)
from render.recipe import Recipe, Weights, read_recipe
from render.run import make_tiling

__all__ = ["Evaluation", "class_layout", "evaluate", "judge_model", "transferability"]


@functools.cache
def judge_model() -> FeatureModel:
    """The network that judges transferability: EfficientNet-Lite2 trained on ImageNet (built
    once; it is frozen)."""
    return efficientnet_lite2()


def judge_rendered(weights: Weights, judge: FeatureModel) -> bool:
    """Whether a render with ``weights`` was made by ``judge`` (its figures would then say
    nothing of transfer)."""
    return weights.model == judge.name or (
        weights.sha256 is not None and weights.sha256 == Weights.of(judge).sha256
    )


def class_layout(recipe: Recipe) -> ClassLayout | None:
    """Where the render made by ``recipe`` asks for which class; None unless its objective is
    made of class logits alone (``class_logit``, or ``interpolate``/``atlas``/``mask`` of them)."""
    if not recipe.names_classes:
        return None
    return ClassLayout.of(build(OmegaConf.create(dict(recipe.config["objective"]))))


def recognition(
    model: FeatureModel, canvas: Tensor, layout: ClassLayout, tile: Sequence[int]
) -> dict[int, float]:
    """The share of windows of each level (windows per side) of ``canvas`` that ``model``
    classifies as the class ``layout`` weighs most there, each resized to its input size."""
    size = canvas.shape[-2:]
    return recognition_by_level(
        model, canvas, functools.partial(layout.expected, size), tile, model.input_size
    )


def transferability(canvas: Tensor, recipe: Recipe) -> dict[int, float] | None:
    """The share of windows of each level of ``canvas``, a class render made by ``recipe``,
    that the judge classifies as their class (:func:`recognition`); None when the judge is the
    network that rendered it."""
    layout = class_layout(recipe)
    if layout is None:
        raise ValueError("transferability is measured on class renders")
    judge = judge_model()
    if judge_rendered(recipe.weights, judge):
        return None
    return recognition(judge, canvas, layout, recipe.config["tiling"]["tile_size"])


def level_name(per_side: int, size: tuple[int, int]) -> str:
    """``"whole of 448"``, ``"2x2 of 224"``, ``"1x3 of 512"`` (rows x columns): a level of
    windows of a ``size`` (width, height) canvas."""
    width, height = size
    rows, columns = window_grid((height, width), per_side)
    name = "whole" if rows * columns == 1 else f"{rows}x{columns}"
    w, h = width // columns, height // rows
    return f"{name} of {w}" if w == h else f"{name} of {w}x{h}"


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured of one run (shares per level keyed by windows per side;
    empty where they do not apply)."""

    run_dir: Path
    size: tuple[int, int]  # width, height
    objective: str
    detail: float
    seams: float
    classes: tuple[int, ...] = ()
    labels: tuple[str | None, ...] = ()
    renderer: str | None = None
    judge: str | None = None
    judge_is_renderer: bool = False
    levels: Mapping[int, float] = field(default_factory=dict)
    judged: Mapping[int, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The evaluation as a plain-text table."""
        width, height = self.size
        head = f"{self.run_dir} ({width}x{height}"
        if not self.classes:
            return [
                f"{head}, objective {self.objective}):",
                "  windows: not classified (transferability is for class renders: "
                "objective=class_logit, or interpolate, atlas or mask of class logits)",
                *self._measures(),
            ]
        columns = [f"renderer {self.renderer}"]
        if not self.judge_is_renderer:
            columns.append(f"judge {self.judge}")
        rows = [["windows", *columns]]
        for per_side, share in self.levels.items():
            shares = [share] if self.judge_is_renderer else [share, self.judged[per_side]]
            rows.append(
                [level_name(per_side, (width, height)), *(f"{100 * s:.0f}%" for s in shares)]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        table = [
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        named = "; ".join(
            f"{index} {label}" if label else str(index)
            for index, label in zip(self.classes, self.labels, strict=True)
        )
        which = "class" if len(self.classes) == 1 else "classes by place:"
        lines = [f"{head}, {which} {named}):", *table]
        if self.judge_is_renderer:
            lines.append(
                f"  the judge, {self.judge}, rendered this run: no network that never rendered "
                f"it judged it (no transferability)"
            )
        return [*lines, *self._measures()]

    def _measures(self) -> list[str]:
        return [
            f"  finest-octave detail: {self.detail:.4f}",
            f"  seam ratio at the tile grid: {self.seams:.3f}",
        ]

    def as_dict(self) -> dict[str, Any]:
        """The evaluation as JSON-ready values (levels as a list, whole image first)."""
        width, height = self.size
        return {
            "run_dir": str(self.run_dir),
            "width": width,
            "height": height,
            "objective": self.objective,
            "class_index": self.classes[0] if len(self.classes) == 1 else None,
            "classes": list(self.classes),
            "labels": list(self.labels),
            "renderer": self.renderer,
            "judge": self.judge,
            "judge_is_renderer": self.judge_is_renderer,
            "levels": [
                {
                    "windows_per_side": per_side,
                    "grid": [rows, columns],
                    "window": [width // columns, height // rows],
                    "renderer": share,
                    "judge": None if self.judge_is_renderer else self.judged[per_side],
                }
                for per_side, share in self.levels.items()
                for rows, columns in [window_grid((height, width), per_side)]
            ],
            "detail": self.detail,
            "seams": self.seams,
        }


def run_picture(run_dir: Path) -> Path:
    """``run_dir``'s render.png; UserError if there is none."""
    picture = run_dir / PICTURE
    if not picture.is_file():
        what = "is not a folder" if not run_dir.is_dir() else f"has no {PICTURE}"
        raise UserError(
            f"{run_dir} {what}: give the folder of a finished render (hydra.run.dir), "
            f"which holds its {PICTURE}"
        )
    return picture


def renderer_of(recipe: Recipe, source: Path) -> FeatureModel:
    """The network that made the render whose recipe is ``recipe``, built again from its config."""
    if "model" in recipe.in_python:
        raise UserError(
            f"{source}: its model came as a Python object (render_image), which the recipe "
            f"does not describe; evaluate cannot build it again"
        )
    model: FeatureModel = build(OmegaConf.create(dict(recipe.config["model"])))
    return model


def evaluate(run_dir: Path) -> Evaluation:
    """The measures of ``run_dir``'s render (its class, tiles and model from the recipe it
    carries), judged by :func:`judge_model` where it is a class render."""
    picture = run_picture(run_dir)
    recipe = read_recipe(picture)
    canvas = load_picture(picture)
    height, width = canvas.shape[-2:]
    tiling_cfg = OmegaConf.create(dict(recipe.config["tiling"]))
    common: dict[str, Any] = {
        "run_dir": run_dir,
        "size": (width, height),
        "objective": str((recipe.config.get("objective") or {}).get("_target_")),
        "detail": fine_detail(canvas),
        "seams": seam_ratio(canvas, make_tiling(tiling_cfg, (height, width))),
    }
    layout = class_layout(recipe)
    if layout is None:
        return Evaluation(**common)
    renderer = renderer_of(recipe, picture)
    judged = transferability(canvas, recipe)
    labels = renderer.labels or judge_model().labels
    return Evaluation(
        **common,
        classes=layout.classes,
        labels=tuple(labels[c] if labels else None for c in layout.classes),
        renderer=renderer.name,
        judge=judge_model().name,
        judge_is_renderer=judged is None,
        levels=recognition(renderer, canvas, layout, list(tiling_cfg.tile_size)),
        judged=judged or {},
    )
