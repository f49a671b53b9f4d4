"""The Lightning module: optimise a canvas of tiles, one batch of tiles per step."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import Tensor

from render import shards
from render.alpha import alpha_scale, magnitude, unscaled
from render.checkpoints import SHARDS_KEY, other_world
from render.context import ContextViews, shrink
from render.errors import UserError
from render.memory import release_free_memory
from render.models import FeatureModel
from render.objectives import Objective
from render.objectives.accentuate import photo_activations
from render.objectives.spatial import canvas_points
from render.params import Parameterization
from render.peers import distributed, peers_alive
from render.schedule import TileBatches, tile_generators
from render.store import TileStore
from render.strips import canvas_strips
from tiling import TilingModule

log = logging.getLogger(__name__)


class NonFiniteError(UserError):
    """The objective or the image went to NaN/inf; the render stops before writing garbage."""


#: Where a checkpoint keeps the context views' thumbnail.
CONTEXT_KEY = "context_thumbnail"
# "No failure" when ranks agree on the first failing step (an all_reduce with MIN).
_NO_FAILURE = 2**62


def _nonfinite(what: str) -> NonFiniteError:
    return NonFiniteError(
        f"{what} became non-finite; the render stops before writing it (the last "
        f"checkpoint is intact); try a lower optim.lr or param.init_std"
    )


def check_finite(values: Tensor, what: str) -> None:
    """Stop the render, before anything is written, when ``values`` hold a NaN or an inf.

    Checked a block of rows at a time: ``isfinite`` of a whole canvas of tiles would need
    temporaries larger than the tiles themselves.
    """
    blocks = values.reshape(1) if values.dim() == 0 else values.split(64)
    if not all(bool(torch.isfinite(block).all()) for block in blocks):
        raise _nonfinite(what)


class TileRenderer(pl.LightningModule):
    """Optimises the tiles of a ``TilingModule`` canvas against a feature objective.

    The tiles' parameters and optimiser state live in a :class:`TileStore` (host memory with
    ``offload``); each step swaps one batch of tiles into a fresh parameter on the device,
    takes one optimiser step on it and swaps it back. ``blend`` runs
    ``TilingModule.forward`` over the decoded tiles and writes the result back.

    With several processes each rank stores only the tiles it owns
    (:func:`render.shards.owned_tiles`); a blend receives just the neighbouring ranks' tiles
    that overlap its own (render/shards.py), and nothing gathers the whole canvas.
    """

    def __init__(
        self,
        *,
        model: FeatureModel,
        objective: Objective,
        param: Parameterization,
        transforms: torch.nn.Module,
        tiling: TilingModule,
        optimizer: Callable[..., torch.optim.Optimizer],
        tiles_per_step: int,
        seed: int,
        init_canvas: Tensor | None = None,
        offload: bool = False,
        decode_chunk: int = 8,
        state_dtype: torch.dtype | None = None,
        context: Sequence[tuple[int, int]] | None = None,
        shard: tuple[int, int] = (0, 1),
        init_top: int = 0,
        alpha: bool = False,
        photo: Tensor | None = None,
    ) -> None:
        """Set up the canvas from ``init_canvas`` (pixels in [0, 1]) or seeded noise.

        ``context``, canvas sizes smaller than this one (the first octave's, any between): each
        tile is also scored in its context view at one of them, in turn (render/context.py).
        ``shard``: (rank, world size) of this process (the trainer's); its tiles are set up
        alone, from canvas rows ``init_canvas`` starting at row ``init_top`` (which need only
        cover them). ``alpha``: accumulate each tile's transparency map (render/alpha.py), which
        :meth:`finish` adds to the tiles as a fourth channel. ``photo``: the initial photo at
        this canvas's size ``[1, 3, H, W]``, whose tiles the model also sees when the objective
        reads activations on the photo (``Objective.photo_layers``); a photo's render has no
        context views.
        """
        super().__init__()
        self.model = model
        self.objective = objective
        self.param = param
        self.transforms = transforms
        self.tiling = tiling
        self.optimizer_factory = optimizer
        self.tiles_per_step = tiles_per_step
        self.seed = seed
        self.offload = offload
        self.decode_chunk = decode_chunk
        self.layers = sorted(objective.layers)
        # Objectives that change across the canvas are told where each pixel lies; any other
        # callable objective is scored from the activations and images alone.
        self.spatial = isinstance(objective, Objective) and objective.spatial
        self.photo_layers = (
            sorted(objective.photo_layers) if isinstance(objective, Objective) else []
        )
        # (y, x) of every tile's top-left pixel.
        self._tile_starts = torch.tensor(tiling.tile_coords())
        self.context = (
            None
            if context is None
            else ContextViews(
                (tiling._base_size[0], tiling._base_size[1]), context, param.tile_size
            )
        )
        self.automatic_optimization = False
        # The frozen model's weights are not part of a render's state: checkpoints leave them out.
        self.strict_loading = False
        self.shard = shard
        self.own = shards.owned_tiles(tiling.num_tiles(), *shard)
        if init_canvas is None:
            generator = torch.Generator().manual_seed(seed)
            params = shards.init_rows(param, tiling.num_tiles(), self.own, generator)
        else:
            params = torch.empty((len(self.own), *param.param_shape))
            self._encode_canvas_into(init_canvas, params, init_top)
        if self.photo_layers and photo is None:
            raise ValueError(f"{objective!r} reads the photo's activations: give the photo")
        # This rank's tiles of the photo, on the host: a batch's are moved with its step.
        self.photo = None if photo is None else torch.cat(list(self._canvas_tiles(photo)))
        self.store = TileStore(
            params,
            pin_memory=offload and torch.cuda.is_available(),
            state_dtype=state_dtype,
            first=self.own.start,
            alpha=torch.zeros((len(self.own), *param.tile_size)) if alpha else None,
        )
        self.loader: TileBatches | None = None
        # Each step's objective stays on the device until it is read in bulk (see drain_scores):
        # reading it every step would make every step wait for the device.
        self._scores: list[tuple[int, Tensor]] = []
        self._last_score: float | None = None

    # --- Lightning hooks -------------------------------------------------------------------

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # A placeholder: each step hands the optimiser that step's batch (see training_step).
        return self.optimizer_factory([torch.zeros(1, requires_grad=True)])

    def setup(self, stage: str) -> None:
        if (self.global_rank, self.trainer.world_size) != self.shard:
            raise UserError(
                f"this process is rank {self.global_rank} of {self.trainer.world_size}, but its "
                f"tiles were set up for rank {self.shard[0]} of {self.shard[1]}; launch the "
                f"processes with trainer.strategy=ddp, torchrun or srun (not ddp_spawn)"
            )

    def train_dataloader(self) -> TileBatches:
        self.loader = TileBatches(
            self.tiling.num_tiles(),
            self.tiles_per_step,
            self.seed,
            rank=self.global_rank,
            world_size=self.trainer.world_size,
        )
        return self.loader

    def on_fit_start(self) -> None:
        if not self.offload:
            self.store.to(self.device)
        if self.context is not None and (thumbnails := self.context.thumbnails) is not None:
            # A checkpoint's thumbnails are loaded before the module reaches its device (unless
            # the strategy restores after its setup).
            self.context.thumbnails = [t.to(self.device) for t in thumbnails]

    def on_train_start(self) -> None:
        # Lightning prefetches a batch, so the loader state it saved may run one ahead.
        assert self.loader is not None
        self.loader.position = self.global_step
        if self.context is not None and self.context.thumbnails is None:
            self.context.refresh(self.thumbnails(self.context.sizes), self.device)
            release_free_memory()

    def transfer_batch_to_device(self, batch: Tensor, device: torch.device, _: int) -> Tensor:
        # Tile indices stay on the host: the store moves them without waiting for the device.
        return batch

    def training_step(self, idx: Tensor, batch_idx: int) -> None:
        """One optimiser step on one batch of tiles; nothing here waits for the device."""
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)  # configure_optimizers gives one
        inner = optimizer.optimizer
        if len(idx) == 0:
            inner.param_groups[0]["params"] = []
            optimizer.step()  # keeps the step count in line with the other ranks
            return
        param, state = self.store.swap_in(idx, self.device)
        inner.param_groups[0]["params"] = [param]
        inner.state.clear()
        if state:
            inner.state[param] = state
        tiles = self.param.decode(param)
        if self.store.alpha is not None:
            # The backward pass computes the pixels' gradient on its way to the parameters anyway.
            tiles.retain_grad()
        score = self._score(tiles, idx)
        self._scores.append((self.global_step, score.detach()))
        optimizer.zero_grad()
        # The objective is a mean over the batch: times the batch size, each tile's gradient is
        # its own, whichever tiles share the batch (the same picture on any number of ranks).
        self.manual_backward(-score * len(idx))
        if self.store.alpha is not None:
            assert tiles.grad is not None
            scaler = getattr(self.trainer.precision_plugin, "scaler", None)
            self.store.accumulate(idx, magnitude(unscaled(tiles.grad, scaler)))
        optimizer.step()
        # Parameters that went non-finite here make the objective non-finite when their tiles
        # come round again; before that, checkpoints, blends and outputs check the tiles.
        self.store.swap_out(idx, param, inner.state[param])
        inner.state.clear()

    def _score(self, tiles: Tensor, idx: Tensor) -> Tensor:
        """The objective of the pixel ``tiles`` of tiles ``idx``: the mean over the tiles as the
        model sees them and, with context views, over their context views too.
        """
        starts, images, spans = self._tile_starts[idx], tiles, None
        if self.context is not None:
            views, corners, view_spans = self.context.views(
                tiles, starts, self.store.updates_of(idx)
            )
            images = torch.cat([tiles, views])
            starts = torch.cat([starts.double(), corners])
            tile = torch.tensor(self.param.tile_size, dtype=torch.float64)
            spans = torch.cat([tile.expand(len(idx), 2), view_spans])
        seen = self.transforms(images, self._generators(idx))
        activations = self.model.capture(seen, self.layers)
        if self.photo_layers:
            activations |= self._photo_activations(idx)
        if not self.spatial:
            return self.objective(activations, seen)
        points = canvas_points(
            self.transforms,
            starts,
            self.param.tile_size,
            self.tiling._base_size,
            self._generators(idx),
            spans,
        )
        return self.objective.evaluate(activations, seen, points.to(self.device, non_blocking=True))

    def _photo_activations(self, idx: Tensor) -> dict[str, Tensor]:
        """The photo layers' activations on the photo's tiles ``idx``, seen through the same
        draw of the transforms as the render's tiles (fresh generators draw the same).
        """
        assert self.photo is not None  # __init__ requires it
        photo = self.photo[idx - self.own.start].to(self.device, non_blocking=True)
        views = self.transforms(photo, self._generators(idx))
        return photo_activations(self.model.capture, views, self.photo_layers)

    def _generators(self, idx: Tensor) -> list[torch.Generator]:
        """One generator per image the model sees of tiles ``idx`` (the tiles, then any context
        views); fresh ones per call, so the transforms and the canvas points draw the same.
        """
        updates = self.store.updates_of(idx)
        generators = tile_generators(self.seed, idx, updates)
        if self.context is not None:
            generators += tile_generators(self.seed, idx, updates, context=True)
        return generators

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Lightning sets this Trainer attribute in its logger connector, undeclared.
        if self.global_step % self.trainer.log_every_n_steps == 0:  # type: ignore[attr-defined]
            self.drain_scores()
        if self._last_score is not None:
            # A host float: the progress bar shows it without touching the device.
            self.log("objective", self._last_score, prog_bar=True, logger=False, batch_size=1)

    def drain_scores(self) -> None:
        """Read the objectives of the steps so far in one transfer, stop if any is non-finite,
        and write them to the loggers, one row per step.

        Runs every ``trainer.log_every_n_steps`` steps and before every blend, checkpoint and
        output, so nothing is written after a non-finite objective.
        """
        steps = [step for step, _ in self._scores]
        values = torch.tensor([])
        if self._scores:
            values = torch.stack([score for _, score in self._scores]).float().cpu()
        self._scores = []
        bad = (~torch.isfinite(values)).nonzero()
        failure = self._first_failure(steps[int(bad[0])] if len(bad) else None)
        if failure is not None:
            step, rank = failure
            where = f" on rank {rank}" if distributed() else ""
            raise _nonfinite(f"the objective at step {step}{where}")
        for step, value in zip(steps, values.tolist(), strict=True):
            for logger in self.loggers:
                logger.log_metrics({"objective": value}, step=step)
            self._last_score = value

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.drain_scores()
        self.check_finite(self.store.params, f"the tile parameters at step {self.global_step}")
        checkpoint["state_dict"] = {
            k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("model.")
        }
        checkpoint["tile_store"] = self.store.state_dict()
        checkpoint[SHARDS_KEY] = self.shard[1]
        if self.context is not None and (thumbnails := self.context.thumbnails) is not None:
            # The thumbnails of the last blend: a resumed render sees the views it would have.
            checkpoint[CONTEXT_KEY] = [t.cpu() for t in thumbnails]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(SHARDS_KEY, 1)
        if saved != self.shard[1]:
            raise other_world(self.trainer.ckpt_path, saved, self.shard[1])
        self.store.load_state_dict(checkpoint["tile_store"])
        if self.store.alpha is not None and checkpoint["tile_store"].get("alpha") is None:
            log.warning(
                "the checkpoint was saved without output.alpha: the transparency map counts "
                "only the steps from step %d on",
                checkpoint.get("global_step", 0),
            )
        if self.context is not None and CONTEXT_KEY in checkpoint:
            saved = checkpoint[CONTEXT_KEY]
            # Checkpoints from before several context scales hold the one thumbnail.
            saved = [saved] if isinstance(saved, Tensor) else saved
            self.context.thumbnails = [t.to(self.device) for t in saved]

    def on_train_end(self) -> None:
        self.drain_scores()

    def finish(self) -> Tensor:
        """After fit: this rank's tiles decoded on the host, with their transparency maps
        divided by the canvas's :func:`render.alpha.alpha_scale` as a fourth channel if they
        were accumulated (a collective then); the tile store is let go.

        The parameters and optimiser state matter only for resuming (checkpoints hold them),
        and Lightning has moved the module back to the CPU; dropping the store before the
        outputs are built keeps it out of the render's peak memory.
        """
        self.store.reset_state()
        self.store.to(torch.device("cpu"))
        alpha = self.store.alpha
        pixels = self.decode_all(channels=3 if alpha is None else 4)
        if alpha is not None:
            pixels[:, 3] = alpha.div_(alpha_scale(alpha, self.device))
            self.store.alpha = None
        self.store.params = self.store.params.new_empty((0, *self.store.params.shape[1:]))
        release_free_memory()
        return pixels

    # --- the canvas ------------------------------------------------------------------------

    def _chunks(self) -> list[slice]:
        """This rank's rows in chunks of ``decode_chunk`` tiles, cut where one process cuts
        the canvas's tiles: a batched FFT of other tiles could round differently.
        """
        own, size = self.own, self.decode_chunk
        cuts = [own.start, *range((own.start // size + 1) * size, own.stop, size), own.stop]
        return [slice(a - own.start, b - own.start) for a, b in itertools.pairwise(cuts) if b > a]

    @torch.no_grad()
    def _decode_tiles(self, idx: Tensor) -> Tensor:
        """This rank's tiles ``idx`` (increasing) decoded on the module's device, each in the
        chunk :meth:`decode_all` decodes it in, so that its bits are the same.
        """
        pieces = []
        for chunk in self._chunks():
            lo = chunk.start + self.own.start
            wanted = idx[(idx >= lo) & (idx < chunk.stop + self.own.start)]
            if len(wanted):
                decoded = self.param.decode(self.store.params[chunk].to(self.device))
                pieces.append(decoded[wanted - lo])
        return torch.cat(pieces)

    @torch.no_grad()
    def decode_all(self, channels: int = 3) -> Tensor:
        """This rank's tiles as RGB pixels ``[n, 3, h, w]``, on the store's device; with
        ``channels`` above 3, in the first three channels of a tensor that has that many
        (the others left for the caller to fill).
        """
        h, w = self.param.tile_size
        rows = self.store.params
        pixels = torch.empty((rows.shape[0], channels, h, w), device=rows.device)
        for chunk in self._chunks():
            pixels[chunk, :3] = self.param.decode(rows[chunk].to(self.device)).to(rows.device)
        self.check_finite(pixels[:, :3], f"the tiles at step {self.global_step}")
        return pixels

    def _canvas_tiles(self, canvas: Tensor, top: int = 0) -> Iterator[Tensor]:
        """This rank's tiles of ``canvas`` [1, 3, rows, W] (canvas rows from row ``top``), a
        chunk at a time: the same tiles as ``tiling.split_into_tiles(canvas)``.
        """
        h, w = self.param.tile_size
        coords = self.tiling.tile_coords()[self.own.start : self.own.stop]
        for chunk in self._chunks():
            yield torch.cat(
                [canvas[:, :, y - top : y - top + h, x : x + w] for y, x in coords[chunk]]
            )

    @torch.no_grad()
    def _encode_canvas_into(self, canvas: Tensor, rows: Tensor, top: int = 0) -> None:
        """Encode this rank's tiles of ``canvas`` (rows from row ``top``) into ``rows``, a chunk
        of tiles at a time: never all of them at once (on a large canvas that stack is as large
        as the parameters).
        """
        self._encode_into(self._canvas_tiles(canvas, top), rows, canvas.device)

    @torch.no_grad()
    def _encode_into(self, chunks: Iterable[Tensor], rows: Tensor, device: torch.device) -> None:
        """Encode chunks of pixel tiles, in order, on ``device`` straight into ``rows``."""
        start = 0
        for chunk in chunks:
            rows[start : start + len(chunk)] = self.param.encode(chunk.to(device)).to(rows.device)
            start += len(chunk)

    @torch.no_grad()
    def blend(self) -> Tensor:
        """Blend the overlaps with ``TilingModule.forward``; returns the blended pixel tiles."""
        self.drain_scores()
        pixels = self.decode_all()
        if self.sharded:
            pixels = self._blend_shard(pixels)
        else:
            self.tiling(pixels, out=pixels)
        chunks = (pixels[chunk] for chunk in self._chunks())
        self._encode_into(chunks, self.store.params, self.device)
        if self.context is not None:
            self.context.refresh(self.thumbnails(self.context.sizes, pixels), self.device)
        return pixels

    def _blend_shard(self, pixels: Tensor) -> Tensor:
        """This rank's blended tiles: its rows of the canvas from its own tiles and the
        neighbouring ranks' tiles that overlap them (a halo exchange), cut into its tiles.
        """
        total, world = self.tiling.num_tiles(), self.shard[1]
        blocks = [shards.owned_tiles(total, r, world) for r in range(world)]
        wanted = []
        for block in blocks:
            near = shards.neighbours(self.tiling, torch.arange(block.start, block.stop))
            wanted.append(near[(near < block.start) | (near >= block.stop)])
        with peers_alive():
            halo = shards.exchange(pixels, self.own, total, wanted, self.device)
        top, bottom = shards.tile_rows(self.tiling, self.own)
        own = torch.arange(self.own.start, self.own.stop)
        band = shards.place(
            self.tiling, [(pixels, own), (halo, wanted[self.shard[0]])], top, bottom
        )
        del halo
        # In place: the band is complete before any tile is written.
        return shards.crop_tiles(self.tiling, band, top, own, out=pixels)

    @property
    def sharded(self) -> bool:
        """Whether the canvas's tiles are shared among several processes."""
        return self.shard[1] > 1

    @torch.no_grad()
    def canvas(self, pixels: Tensor | None = None, border: int | None = None) -> Tensor:
        """The full image ``[1, 3, H, W]``: ``rebuild_with_masks`` of the decoded tiles, every
        tile of the canvas (with several processes, see :meth:`canvas_rows` and :meth:`fetch`).
        """
        if pixels is None and not self.sharded:
            # Decoded a row of tiles at a time: never every tile and the canvas at once.
            height = self.tiling._base_size[0]
            ((_, band),) = canvas_strips(self.tiling, self._decode_tiles, height, border)
            self.check_finite(band, f"the canvas at step {self.global_step}")
            return band[None]
        if pixels is None:
            pixels = self.decode_all()
        if len(pixels) != self.tiling.num_tiles():
            raise RuntimeError(f"canvas of {len(pixels)} of {self.tiling.num_tiles()} tiles")
        return self.tiling.rebuild_with_masks(pixels, border=border).clamp_(0, 1)

    @torch.no_grad()
    def thumbnails(
        self, sizes: Sequence[tuple[int, int]], pixels: Tensor | None = None
    ) -> list[Tensor]:
        """The canvas shrunk to each of ``sizes``, ``[1, 3, *size]`` in [0, 1], on every rank (a
        collective: each rank shrinks its own tiles' share of the canvas and the shares are
        summed, as the shrink is linear); ``pixels``: this rank's decoded tiles, if at hand.
        """
        height, width = self.tiling._base_size
        if not self.sharded:
            canvas = self.canvas(pixels)
            return [
                canvas if tuple(size) == (height, width) else shrink(canvas, size).clamp_(0, 1)
                for size in sizes
            ]
        if pixels is None:
            pixels = self.decode_all()
        top, bottom = shards.tile_rows(self.tiling, self.own)
        own = torch.arange(self.own.start, self.own.stop)
        band = shards.place(self.tiling, [(pixels, own)], top, bottom)
        smalls = []
        for size in sizes:
            small = shards.shrink_rows(band, top, height, size).to(self.device)
            with peers_alive():
                dist.all_reduce(small)
            smalls.append(small.clamp_(0, 1))
        return smalls

    def thumbnail(self, size: tuple[int, int], pixels: Tensor | None = None) -> Tensor:
        """The canvas shrunk to ``size`` (see :meth:`thumbnails`)."""
        return self.thumbnails([size], pixels)[0]

    @torch.no_grad()
    def canvas_rows(self, pixels: Tensor, rows: list[tuple[int, int]]) -> Tensor:
        """Canvas rows ``[top, bottom) = rows[rank]`` ``[1, 3, bottom - top, W]`` in [0, 1] (a
        collective: each rank receives the tiles over its rows from their owners).
        """
        total, world, rank = self.tiling.num_tiles(), self.shard[1], self.shard[0]
        wanted = []
        for r, (top, bottom) in enumerate(rows):
            block = shards.owned_tiles(total, r, world)
            near = shards.tiles_in_rows(self.tiling, top, bottom)
            wanted.append(near[(near < block.start) | (near >= block.stop)])
        with peers_alive():
            received = shards.exchange(pixels, self.own, total, wanted, self.device)
        top, bottom = rows[rank]
        own = shards.tiles_in_rows(self.tiling, top, bottom)
        own = own[(own >= self.own.start) & (own < self.own.stop)]
        band = shards.place(
            self.tiling,
            [(pixels[own - self.own.start], own), (received, wanted[rank])],
            top,
            bottom,
        )
        return band.clamp_(0, 1)

    @torch.no_grad()
    def fetch(self, pixels: Tensor, idx: Tensor) -> Tensor | None:
        """Tiles ``idx`` (sorted) of this canvas on rank 0, None on the others (a collective:
        each owner sends rank 0 its tiles among ``idx``; ``pixels`` are this rank's tiles).
        """
        if not self.sharded:
            return pixels[idx]
        nothing = idx.new_empty(0)
        wanted = [idx if r == 0 else nothing for r in range(self.shard[1])]
        with peers_alive():
            tiles = shards.exchange(pixels, self.own, self.tiling.num_tiles(), wanted, self.device)
        return tiles if self.shard[0] == 0 else None

    # --- several processes -----------------------------------------------------------------

    def _first_failure(self, step: int | None) -> tuple[int, int] | None:
        """``(step, rank)`` of the earliest failure on any rank, agreed by every rank.

        Every rank calls this at the same points, so one rank's failure stops all of them
        together instead of leaving the others waiting in the next collective.
        """
        if not distributed():
            return None if step is None else (step, 0)
        world, rank = dist.get_world_size(), dist.get_rank()
        code = _NO_FAILURE if step is None else step * world + rank
        agreed = torch.tensor([code], dtype=torch.int64, device=self.device)
        with peers_alive():
            dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
        first = int(agreed.item())
        return None if first == _NO_FAILURE else divmod(first, world)

    def check_finite(self, values: Tensor, what: str) -> None:
        """:func:`check_finite` of this rank's ``values``, agreed by every rank: a rank whose
        tiles went non-finite stops them all together.
        """
        try:
            check_finite(values, what)
        except NonFiniteError:
            if self._first_failure(0) is not None:
                raise
        if self._first_failure(None) is not None:
            raise _nonfinite(f"{what} on another rank")
