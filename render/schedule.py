"""The seeded, resumable stream of tile-index batches that drives a render."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from render.shards import owned_tiles


def _generator(stream: int, seed: int, a: int, b: int) -> torch.Generator:
    """A CPU generator determined by its four integers and nothing else."""
    # Reduced to the generator's 64 bits, as manual_seed reduces a negative seed.
    return torch.Generator().manual_seed(
        (((stream * 1_000_003 + seed) * 1_000_003 + a) * 65_537 + b) % 2**64
    )


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """A CPU generator for one step's randomness, independent of everything but its inputs.

    Deriving it from (seed, step, rank) instead of carrying RNG state makes a resumed render
    draw exactly what an uninterrupted one would.
    """
    return _generator(0, seed, step, rank)


def tile_generators(
    seed: int, tiles: torch.Tensor, updates: torch.Tensor, context: bool = False
) -> list[torch.Generator]:
    """One CPU generator per tile for its next update, from (seed, tile, update count) only;
    ``context``: for the transforms of the tiles' context views (render/context.py) instead.

    A tile's random draws then do not depend on which tiles share its batch, on the order of
    the batches or on the number of processes.
    """
    stream = 2 if context else 1
    return [
        _generator(stream, seed, tile, update)
        for tile, update in zip(tiles.tolist(), updates.tolist(), strict=True)
    ]


class TileBatches:
    """Batches of tile indices: each epoch visits every tile of this rank's shard once.

    Batch ``k`` is a pure function of (seed, rank, k); the position is the only state, so a
    resumed render continues with exactly the batches it would have had. An epoch is split
    into batches of nearly equal size (9 tiles at 8 per step: 5 + 4, not 8 + 1). Each rank
    visits the block of tiles it owns (:func:`render.shards.owned_tiles`); every rank yields
    the same number of batches per epoch so that ranks stay in step (a tiny shard may yield an
    empty batch).
    """

    def __init__(
        self, num_tiles: int, tiles_per_step: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        """Shard ``num_tiles`` for ``rank`` of ``world_size`` and batch it by ``tiles_per_step``."""
        tiles = owned_tiles(num_tiles, rank, world_size)
        self.shard = torch.arange(tiles.start, tiles.stop)
        self.tiles_per_step = min(tiles_per_step, math.ceil(num_tiles / world_size))
        self.batches_per_epoch = math.ceil(math.ceil(num_tiles / world_size) / self.tiles_per_step)
        self.seed, self.rank = seed, rank
        self.position = 0

    def batch(self, k: int) -> torch.Tensor:
        """Tile indices of batch ``k`` (a CPU LongTensor)."""
        epoch, j = divmod(k, self.batches_per_epoch)
        order = torch.randperm(
            len(self.shard), generator=step_generator(self.seed, -1 - epoch, self.rank)
        )
        return self.shard[order.tensor_split(self.batches_per_epoch)[j]]

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[torch.Tensor]:
        end = (self.position // self.batches_per_epoch + 1) * self.batches_per_epoch
        while self.position < end:
            k = self.position
            self.position += 1
            yield self.batch(k)

    def state_dict(self) -> dict[str, Any]:
        """Lightning saves this with a checkpoint (it makes the loader resumable)."""
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the position."""
        self.position = int(state["position"])
