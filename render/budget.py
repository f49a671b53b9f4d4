"""How much memory a canvas needs, checked before anything large is allocated."""

from __future__ import annotations

import math

import psutil
import torch
from omegaconf import DictConfig

from render.errors import UserError
from render.params import Parameterization
from tiling import TilingModule

GIB = 2**30
# Adam keeps two moments per parameter.
STATE_COPIES = 2


def tile_bytes(
    param: Parameterization, state_dtype: torch.dtype = torch.float32, alpha: bool = False
) -> int:
    """Bytes of one tile of the store at its peak: its parameters and optimiser state, its
    transparency accumulator with ``alpha`` (render/alpha.py), and its decoded pixels during a
    blend.
    """
    h, w = param.tile_size
    elements = int(torch.Size(param.param_shape).numel())
    pixels = (3 + alpha) * h * w * 4
    return elements * 4 + STATE_COPIES * elements * state_dtype.itemsize + pixels


def canvas_bytes(size: tuple[int, int]) -> int:
    """Bytes of the float canvas that a blend builds (``rebuild_with_masks``)."""
    return 3 * size[0] * size[1] * 4


def bytes_needed(
    tiling: TilingModule,
    param: Parameterization,
    size: tuple[int, int],
    state_dtype: torch.dtype = torch.float32,
    world_size: int = 1,
    alpha: bool = False,
) -> int:
    """Peak bytes of one rank's canvas state: its share of the tile store (with transparency
    accumulators when ``alpha``) plus one blend.

    A rank holds a contiguous block of ``ceil(tiles / world_size)`` tiles; a blend decodes
    them and blends them in place (``TilingModule.forward(out=)``) through the canvas they
    cover, their share of the whole.
    """
    total = tiling.num_tiles()
    tiles = math.ceil(total / world_size)
    return tiles * tile_bytes(param, state_dtype, alpha) + canvas_bytes(size) * tiles // total


def uses_cuda(trainer: DictConfig) -> bool:
    """Whether the render's steps will run on a CUDA device (``trainer.accelerator``)."""
    accelerator = trainer.get("accelerator", "auto")
    return accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()


def check_memory(
    tiling: TilingModule,
    param: Parameterization,
    size: tuple[int, int],
    cfg: DictConfig,
    state_dtype: torch.dtype,
    world_size: int = 1,
) -> None:
    """Raise UserError, before allocating, when one rank's share of the canvas cannot fit
    where it will live."""
    needed = bytes_needed(tiling, param, size, state_dtype, world_size, cfg.output.alpha)
    on_gpu = uses_cuda(cfg.trainer)
    if on_gpu and not cfg.render.offload:
        available, where = torch.cuda.mem_get_info()[0], "free GPU memory"
    else:
        available, where = psutil.virtual_memory().available, "available host memory"
    if needed > available:
        raise UserError(
            f"a canvas of {tiling.num_tiles()} tiles ({tiling.tiling_pattern()[0]}x"
            f"{tiling.tiling_pattern()[1]}) needs about {needed / GIB:.1f} GiB but only "
            f"{available / GIB:.1f} GiB of {where} is left; use a smaller tiling.base_size, "
            f"larger tiles or less overlap"
            + (", or render.offload=true" if on_gpu and not cfg.render.offload else "")
        )
