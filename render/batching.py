"""``render.tiles_per_step=auto``: the batch of tiles that fills the device, measured."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable

import torch
from omegaconf import DictConfig

from render.budget import uses_cuda
from render.config import build
from render.errors import UserError
from render.models import FeatureModel
from render.objectives import Objective
from render.objectives.accentuate import photo_activations
from render.objectives.spatial import canvas_points
from render.params import Parameterization
from render.schedule import step_generator

log = logging.getLogger(__name__)

# Set by the process that measured, for the processes Lightning's DDP launches from it: every
# rank must step the same batch, or the ranks would fall out of step.
MEASURED_ENV = "TILEDREAM_TILES_PER_STEP"
# Of the free device memory, the share a batch may take: the canvas, a blend's chunks and the
# allocator's fragmentation need the rest.
FREE_SHARE = 0.7
# Past a few hundred tiles a step is barely cheaper per tile (H200 figures in docs/benchmarks.md).
MOST_TILES = 512
#: render.tiles_per_step=null on the CPU (see default_tiles_per_step).
CPU_TILES_PER_STEP = 3


def probe(
    model: FeatureModel,
    objective: Objective,
    param: Parameterization,
    transforms: torch.nn.Module,
    device: torch.device,
    views: int = 1,
) -> Callable[[int], None]:
    """A function that runs one render step's forward and backward on ``k`` random tiles, the
    model seeing ``views`` images of each (2: the tile and its context view).
    """
    layers = sorted(objective.layers)
    model = model.to(device)

    def step(k: int) -> None:
        n = k * views
        params = param.init(n, torch.Generator().manual_seed(k)).to(device).requires_grad_()
        images = transforms(param.decode(params), step_generator(0, k))
        points = None
        if objective.spatial:
            tile = param.tile_size
            starts = torch.zeros((n, 2), dtype=torch.long)
            points = canvas_points(transforms, starts, tile, tile, step_generator(0, k)).to(device)
        activations = model.capture(images, layers)
        if objective.photo_layers:
            # The photo's views cost a forward pass without gradients; any pixels measure it.
            photo = sorted(objective.photo_layers)
            activations |= photo_activations(model.capture, images.detach(), photo)
        objective.evaluate(activations, images, points).backward()

    return step


def auto_tiles_per_step(
    step: Callable[[int], None], device: torch.device, shard: int
) -> tuple[int, str]:
    """The batch for one rank's ``shard`` of tiles, and how it was chosen (for the log).

    On a GPU: the peak memory of a step of one tile and of two tiles gives the memory per tile
    and the fixed part; the batch is what fits in ``FREE_SHARE`` of the free memory. On the
    CPU: two tiles per core keep every core busy in the convolutions.
    """
    if device.type != "cuda":
        cores = os.cpu_count() or 1
        return max(1, min(shard, 2 * cores)), f"2 per CPU core, {cores} cores"
    peaks = []
    for k in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step(k)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - before)
    per_tile = max(peaks[1] - peaks[0], 1)
    fixed = max(peaks[0] - per_tile, 0)
    free = torch.cuda.mem_get_info(device)[0]
    fits = math.floor((FREE_SHARE * free - fixed) / per_tile)
    chosen = max(1, min(shard, fits, MOST_TILES))
    return chosen, (
        f"{per_tile / 2**20:.0f} MiB per tile measured, {free / 2**30:.1f} GiB free on "
        f"{torch.cuda.get_device_name(device)}"
    )


def launched_apart(world: int) -> bool:
    """Whether this is one of ``world`` processes started by torchrun or srun (not by Lightning
    from this one): no process can measure for the others before they start.
    """
    return world > 1 and MEASURED_ENV not in os.environ and "RANK" in os.environ


def default_tiles_per_step(trainer: DictConfig, world: int = 1) -> tuple[int | str, str]:
    """What ``render.tiles_per_step=null`` (the default) means, and why (for the log).

    ``auto`` where the steps run on CUDA: a batch of hundreds of tiles costs a fraction of a
    small one per tile. ``CPU_TILES_PER_STEP`` on the CPU (the batch the CPU renders and their
    figures were made with) and under torchrun or srun, where auto cannot be measured.
    """
    if not uses_cuda(trainer):
        return CPU_TILES_PER_STEP, "the default on the CPU; auto on CUDA"
    if launched_apart(world):
        return CPU_TILES_PER_STEP, (
            "the default under torchrun or srun, where auto cannot be measured by one process "
            "for all; give a number for a larger batch"
        )
    return "auto", "the default on CUDA"


def tiles_per_step(
    cfg: DictConfig,
    model: FeatureModel,
    objective: Objective,
    tiles: int,
    world: int,
    views: int = 1,
) -> int:
    """``render.tiles_per_step`` as a number: the given one, the default's
    (:func:`default_tiles_per_step`), or the measured one for ``auto`` (with ``views`` images
    of each tile, as :func:`probe`). The value has passed the schema's rule (render.config).
    """
    value = cfg.render.tiles_per_step
    if value is None:
        value, why = default_tiles_per_step(cfg.trainer, world)
        log.info("render.tiles_per_step=null: %s (%s)", value, why)
    if value != "auto":
        return int(value)
    if world > 1 and MEASURED_ENV in os.environ:
        return int(os.environ[MEASURED_ENV])
    if launched_apart(world):
        raise UserError(
            "render.tiles_per_step=auto is measured by one process and handed to the ones "
            "Lightning launches; with torchrun or srun give a number (the log of a "
            "one-process run with auto says which)"
        )
    on_gpu = uses_cuda(cfg.trainer)
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    tile = tuple(cfg.tiling.tile_size)
    param, transforms = build(cfg.param, tile_size=tile), build(cfg.transforms)
    step = probe(model, objective, param, transforms, device, views)
    chosen, why = auto_tiles_per_step(step, device, math.ceil(tiles / world))
    model.to("cpu")
    log.info("render.tiles_per_step=auto: %d tiles per step (%s)", chosen, why)
    if world > 1:
        os.environ[MEASURED_ENV] = str(chosen)
    return chosen
