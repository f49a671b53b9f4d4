"""Lightning's DDP for tiles: processes and collectives, without gradient averaging."""

from __future__ import annotations

from pytorch_lightning.strategies import DDPStrategy


class TileDDPStrategy(DDPStrategy):
    """Every rank optimises its own shard of tiles, so gradients must not be averaged.

    Lightning's DDP launches the processes (torchrun, SLURM, or its own launcher), sets up
    torch.distributed and offers its collectives; only the DistributedDataParallel wrapper,
    whose job is to all-reduce gradients, is left out. Tiles meet through
    ``TileRenderer.sync_store`` (``all_gather``) before each blend.
    """

    strategy_name = "tile_ddp"

    def configure_ddp(self) -> None:
        """Keep the LightningModule unwrapped."""
