"""The objective of each frame: the config's throughout, or a morph from it through others.

A morph spends equal shares of the video going from one objective to the next: frame
``t`` of ``T`` sits at ``p = t / (T - 1) * (K - 1)`` along the ``K`` objectives and is the
cross-fade ``(1 - s) * objective[k] + s * objective[k + 1]`` with ``k = floor(p)`` and ``s``
the smoothstep of ``p - k``, so the first frame is the first objective alone, the last frame
the last one, and the weights change slowly near each listed objective.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from omegaconf import DictConfig

from render.config import build
from render.objectives import Objective
from render.objectives.layouts import objective_list


class Schedule:
    """The objective of every frame of a video."""

    def __init__(self, objectives: Sequence[Objective], frames: int) -> None:
        """Move through ``objectives`` (one: constant) evenly over ``frames`` frames."""
        self.objectives, self.frames = list(objectives), frames

    @classmethod
    def from_config(cls, cfg: DictConfig, objective: Objective) -> Schedule:
        """From ``objective`` (the render's, built from ``cfg``) through ``cfg``'s
        ``video.classes``, ``video.channels`` (of ``objective.layer``) or ``video.objectives``;
        ``objective`` throughout when none is given."""
        video = cfg.video
        cells = None if video.objectives is None else [build(c) for c in video.objectives]
        listed = objective_list(
            "video",
            ("video.", "objective.layer"),
            cfg.objective.get("layer"),
            None if video.channels is None else list(video.channels),
            None if video.classes is None else list(video.classes),
            cells,
            required=False,
        )
        return cls([objective, *(listed or [])], int(video.frames))

    def weights(self, frame: int) -> tuple[int, float]:
        """``(k, s)``: frame ``frame`` is ``(1 - s) * objectives[k] + s * objectives[k + 1]``."""
        count = len(self.objectives)
        if count == 1 or self.frames == 1:
            return 0, 0.0
        position = frame / (self.frames - 1) * (count - 1)
        k = min(math.floor(position), count - 2)
        share = position - k
        return k, share * share * (3 - 2 * share)

    def at(self, frame: int) -> Objective:
        """The objective of frame ``frame`` (from 0)."""
        k, s = self.weights(frame)
        if s == 0:
            return self.objectives[k]
        if s == 1:
            return self.objectives[k + 1]
        return (1 - s) * self.objectives[k] + s * self.objectives[k + 1]
