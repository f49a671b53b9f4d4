"""Lightning callbacks of a render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from torch import Tensor

from render.memory import release_free_memory
from render.renderer import TileRenderer


class BlendCallback(pl.Callback):
    """Every ``every_n_steps`` steps, blend the tiles' overlaps (``TilingModule.forward``).

    ``on_blend`` receives the full canvas after each blend on rank 0 (the progress GIF uses it).
    """

    def __init__(
        self, every_n_steps: int, on_blend: Callable[[Tensor], None] | None = None
    ) -> None:
        """Blend every ``every_n_steps`` optimiser steps (0 never blends)."""
        self.every_n_steps = every_n_steps
        self.on_blend = on_blend

    def on_train_start(self, trainer: pl.Trainer, pl_module: TileRenderer) -> None:
        if self.on_blend is not None and trainer.is_global_zero and trainer.global_step == 0:
            self.on_blend(pl_module.canvas())
            release_free_memory()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: TileRenderer, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps <= 0 or step % self.every_n_steps != 0:
            return
        pixels = pl_module.blend()
        if self.on_blend is not None and trainer.is_global_zero:
            self.on_blend(pl_module.canvas(pixels))
        del pixels
        release_free_memory()
