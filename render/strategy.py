"""Lightning's DDP for tiles: processes and collectives, without gradient averaging."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.strategies import DDPStrategy

from render.checkpoints import other_world, saved_world, shard_file


class TileDDPStrategy(DDPStrategy):
    """Every rank optimises its own block of tiles, so gradients must not be averaged.

    Lightning's DDP launches the processes (torchrun, SLURM, or its own launcher), sets up
    torch.distributed and offers its collectives; only the DistributedDataParallel wrapper,
    whose job is to all-reduce gradients, is left out. Ranks meet through the tile exchanges
    of ``TileRenderer`` (render/shards.py). Each rank saves and loads its own checkpoint file
    (:func:`render.checkpoints.shard_file`): rank 0's is the file Lightning names.
    """

    strategy_name = "tile_ddp"

    def configure_ddp(self) -> None:
        """Keep the LightningModule unwrapped."""

    def _own_file(self, filepath: _PATH) -> Path:
        return shard_file(Path(filepath), self.global_rank, self.world_size)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], filepath: _PATH, storage_options: Any | None = None
    ) -> None:
        """Every rank writes its own file of the checkpoint (its tiles and its loop state)."""
        self.checkpoint_io.save_checkpoint(
            checkpoint, self._own_file(filepath), storage_options=storage_options
        )

    def remove_checkpoint(self, filepath: _PATH) -> None:
        """Every rank removes its own file."""
        self.checkpoint_io.remove_checkpoint(self._own_file(filepath))

    def load_checkpoint(self, checkpoint_path: _PATH, weights_only: bool | None = None) -> Any:
        """Each rank reads its own file; UserError if another number of processes saved it."""
        world = saved_world(Path(checkpoint_path))
        if world != self.world_size:
            raise other_world(checkpoint_path, world, self.world_size)
        return super().load_checkpoint(self._own_file(checkpoint_path), weights_only)
