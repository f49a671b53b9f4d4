"""How much memory a canvas needs, checked before anything large is allocated."""

from __future__ import annotations

import psutil
import torch
from omegaconf import DictConfig

from render.errors import UserError
from render.params import Parameterization
from tiling import TilingModule

GIB = 2**30
# Adam keeps two moments per parameter.
STATE_COPIES = 2


def bytes_needed(
    tiling: TilingModule,
    param: Parameterization,
    size: tuple[int, int],
    state_dtype: torch.dtype = torch.float32,
) -> int:
    """Peak bytes of a render's canvas state: the tile store plus one blend.

    A blend decodes every tile and blends them in place (``TilingModule.forward(out=)``)
    through one canvas.
    """
    tiles = tiling.num_tiles()
    h, w = param.tile_size
    elements = tiles * int(torch.Size(param.param_shape).numel())
    state = STATE_COPIES * elements * state_dtype.itemsize
    pixels = tiles * 3 * h * w * 4
    canvas = 3 * size[0] * size[1] * 4
    return elements * 4 + state + pixels + canvas


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
) -> None:
    """Raise UserError, before allocating, when the canvas cannot fit where it will live."""
    needed = bytes_needed(tiling, param, size, state_dtype)
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
