"""Lightning callbacks of a render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from torch import Tensor

from render.memory import release_free_memory
from render.outputs import fit_within
from render.renderer import TileRenderer


class BlendCallback(pl.Callback):
    """After every ``every_n_updates`` passes over the tiles, blend the overlaps
    (``TilingModule.forward``).

    A pass updates every tile once, so between two blends each tile takes the same number of
    steps from the same blended canvas, whatever the batches and the number of processes: the
    picture depends on neither. ``on_blend`` receives the canvas after each blend on rank 0,
    shrunk to fit ``preview_size`` pixels (the progress GIF uses it).
    """

    def __init__(
        self,
        every_n_updates: int,
        on_blend: Callable[[Tensor], None] | None = None,
        preview_size: int = 512,
    ) -> None:
        """Blend every ``every_n_updates`` updates of each tile (0 never blends)."""
        self.every_n_updates = every_n_updates
        self.on_blend = on_blend
        self.preview_size = preview_size

    def _preview(self, trainer: pl.Trainer, module: TileRenderer, pixels: Tensor | None) -> None:
        """Hand ``on_blend`` the shrunk canvas (every rank takes part in shrinking it)."""
        if self.on_blend is None:
            return
        height, width = module.tiling._base_size
        size = fit_within((height, width), self.preview_size)
        preview = module.thumbnail(size, pixels)
        if trainer.is_global_zero:
            self.on_blend(preview)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert isinstance(pl_module, TileRenderer)  # the only module it is fitted with
        if trainer.global_step == 0:
            self._preview(trainer, pl_module, None)
            release_free_memory()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.every_n_updates <= 0:
            return
        assert isinstance(pl_module, TileRenderer)
        assert pl_module.loader is not None
        if trainer.global_step % (self.every_n_updates * len(pl_module.loader)) != 0:
            return
        pixels = pl_module.blend()
        self._preview(trainer, pl_module, pixels)
        del pixels
        release_free_memory()
