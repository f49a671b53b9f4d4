"""What a render tells its user while it runs: the octave's progress bar and the expected time."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from render.plan import Octave

log = logging.getLogger(__name__)


class OctaveProgressBar(TQDMProgressBar):
    """Counts the octave's steps out of its total ("octave 2/3: 57/120"), not Lightning's epochs.

    A render's epochs are one pass over the tiles (3 steps for the default canvas), which says
    nothing about how far the render is.
    """

    def __init__(self, label: str) -> None:
        """``label`` names the octave, e.g. ``"octave 2/3"``."""
        super().__init__()
        self.label = label

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        # The logger's version ("octave2") is already in the label; Lightning would cut it.
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        bar = self.train_progress_bar
        if bar.total == trainer.max_steps:
            return  # already set up: the bar runs across epochs
        bar.reset(total=trainer.max_steps)
        bar.initial = trainer.global_step  # a resumed render starts part of the way in
        bar.n = trainer.global_step
        bar.set_description(self.label)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar is not None and self._should_update(step, bar.total):
            bar.n = step
            bar.refresh()
            bar.set_postfix(self.get_metrics(trainer, pl_module))


def images_per_step(octave: Octave, tiles_per_step: int, world_size: int = 1) -> float:
    """Images the model sees in an average step of ``octave`` on one rank: its batches of
    tiles (a pass's last one may be short), each tile with its ``views``.
    """
    shard = math.ceil(octave.tiles / world_size)
    return shard / math.ceil(shard / min(tiles_per_step, shard)) * octave.views


def steps_seconds(
    octaves: Sequence[Octave],
    tiles_per_step: int,
    step_seconds: Callable[[float], float],
    world_size: int = 1,
) -> float:
    """Seconds the steps of ``octaves`` take, given the seconds of a step that shows the model
    a number of images (:func:`images_per_step`).
    """
    return sum(
        o.steps * step_seconds(images_per_step(o, tiles_per_step, world_size)) for o in octaves
    )


class TimeEstimate(pl.Callback):
    """Logs, once the octave's first ``after`` steps are timed, when the octave and render end.

    Later octaves are estimated from the measured seconds per image the model sees, so the
    estimate is rough for the first octave (one tile per step costs more per tile) and firms up
    at each octave.
    """

    def __init__(
        self, plan: Sequence[Octave], octave: int, tiles_per_step: int, after: int = 8
    ) -> None:
        """Estimate octave ``octave`` of ``plan`` after ``after`` of its steps."""
        self.plan, self.octave, self.after = list(plan), octave, after
        self.tiles_per_step = tiles_per_step
        self.start_step = 0
        self.start_time = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_step, self.start_time = trainer.global_step, time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        current = self.plan[self.octave]
        done = trainer.global_step - self.start_step
        if done != min(self.after, current.steps - self.start_step):
            return
        per_step = (time.perf_counter() - self.start_time) / done
        # Per image the model sees: a step of context views shows it two per tile.
        per_image = per_step / images_per_step(current, self.tiles_per_step)
        left = (current.steps - trainer.global_step) * per_step
        later = steps_seconds(
            self.plan[self.octave + 1 :], self.tiles_per_step, lambda images: images * per_image
        )
        log.info(
            "octave %d/%d: %.2f s per step; expected to end in about %.0f s, the render in "
            "about %.0f s",
            self.octave + 1,
            len(self.plan),
            per_step,
            left,
            left + later,
        )
