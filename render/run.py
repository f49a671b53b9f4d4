"""One render from a composed config: build the parts, fit per octave, write the outputs."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torchvision.transforms.v2.functional as TF
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger
from torch import Tensor

from render.budget import check_memory
from render.callbacks import BlendCallback
from render.config import build
from render.errors import UserError
from render.models import FeatureModel
from render.objectives import Objective
from render.outputs import ProgressGif, save_png
from render.params import Parameterization
from render.renderer import TileRenderer
from render.strategy import TileDDPStrategy
from tiling import TilingModule

log = logging.getLogger(__name__)

STATE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

# Expected with a frozen model and a per-batch optimiser; they would only confuse users.
for message in (
    r".*module\(s\) in eval mode.*",
    r".*does not have many workers.*",
    r".*GPU available but not used.*",
    r".*`training_step` returned `None`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
):
    warnings.filterwarnings("ignore", message=message)


def make_tiling(cfg: DictConfig, size: tuple[int, int]) -> TilingModule:
    """``TilingModule`` for one canvas size, with config mistakes reported as UserError."""
    try:
        return TilingModule(
            tile_size=list(cfg.tile_size),
            tile_overlap=OmegaConf.to_container(cfg.tile_overlap),
            base_size=list(size),
            placement=cfg.placement,
            window=cfg.window,
        )
    except (ValueError, TypeError) as error:
        raise UserError(f"tiling: {error}") from None


def octave_sizes(
    base: tuple[int, int], tile: list[int], octaves: int, scale: float
) -> list[tuple[int, int]]:
    """Canvas sizes from coarse to fine, the last being ``base``; never smaller than a tile."""
    if octaves < 1:
        raise UserError(f"render.octaves must be >= 1, got {octaves}")
    if octaves > 1 and scale <= 1:
        raise UserError(f"render.octave_scale must be > 1, got {scale}")
    sizes = []
    for o in range(octaves):
        factor = scale ** (octaves - 1 - o)
        sizes.append(
            tuple(
                b if factor == 1 else min(b, max(t, round(b / factor)))
                for b, t in zip(base, tile, strict=True)
            )
        )
    return sizes


def make_strategy(strategy: Any) -> Any:
    """Lightning's DDP names become the tile-sharding DDP (gradients stay per rank)."""
    if strategy in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        start = {"ddp": "popen", "ddp_spawn": "spawn"}.get(strategy, "fork")
        return TileDDPStrategy(start_method=start)
    return strategy


def make_loggers(run_dir: Path) -> list[Logger]:
    """Every step's metrics as CSV, and in TensorBoard when it is installed."""
    loggers: list[Logger] = [CSVLogger(run_dir, name="metrics", version="")]
    try:
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    except ModuleNotFoundError:
        pass
    return loggers


def make_trainer(cfg: DictConfig, run_dir: Path, ckpt_dir: Path, gif: ProgressGif) -> pl.Trainer:
    """Lightning's Trainer with the render's callbacks; ``trainer.*`` keys pass through."""
    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[assignment]
    kwargs["strategy"] = make_strategy(kwargs.get("strategy", "auto"))
    callbacks: list[pl.Callback] = [BlendCallback(cfg.render.blend_every, gif.add)]
    every = cfg.checkpoint.every_n_steps
    if every > 0:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                every_n_train_steps=every,
                save_last=True,
                save_top_k=0,
                save_on_train_epoch_end=False,
            )
        )
    defaults: dict[str, Any] = {
        "max_epochs": -1,
        "log_every_n_steps": 1,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "use_distributed_sampler": False,
        "default_root_dir": str(run_dir),
    }
    try:
        return pl.Trainer(
            **{**defaults, **kwargs},
            callbacks=callbacks,
            logger=make_loggers(run_dir),
            enable_checkpointing=every > 0,
        )
    except TypeError as error:
        raise UserError(f"trainer: {error} (see lightning.pytorch.Trainer's arguments)") from None
    except (ValueError, RuntimeError, MisconfigurationException) as error:
        raise UserError(f"trainer: {error}") from None


def make_renderer(
    cfg: DictConfig,
    model: FeatureModel,
    objective: Objective,
    tiling: TilingModule,
    param: Parameterization,
    *,
    seed: int,
    init_canvas: Tensor | None,
) -> TileRenderer:
    """The Lightning module for one canvas, with the config's transforms and optimiser."""
    return TileRenderer(
        model=model,
        objective=objective,
        param=param,
        transforms=build(cfg.transforms),
        tiling=tiling,
        optimizer=build(cfg.optim),
        tiles_per_step=cfg.render.tiles_per_step,
        seed=seed,
        init_canvas=init_canvas,
        offload=cfg.render.offload,
        decode_chunk=cfg.render.decode_chunk,
        state_dtype=state_dtype(cfg.render.state_dtype),
    )


def state_dtype(name: str) -> torch.dtype:
    """``render.state_dtype`` as a torch dtype."""
    if name not in STATE_DTYPES:
        raise UserError(f"render.state_dtype must be one of {list(STATE_DTYPES)}, got {name!r}")
    return STATE_DTYPES[name]


def upsample(canvas: Tensor, size: tuple[int, int]) -> Tensor:
    """The previous octave's canvas at the next octave's size."""
    return TF.resize(canvas, list(size), antialias=True).clamp(0, 1)


def resume_point(ckpt_root: Path, octaves: int) -> tuple[int, Path | None]:
    """The octave to resume and its last checkpoint, or (0, None) for a fresh start."""
    for o in reversed(range(octaves)):
        last = octave_dir(ckpt_root, o, octaves) / "last.ckpt"
        if last.is_file():
            return o, last
    return 0, None


def octave_dir(ckpt_root: Path, octave: int, octaves: int) -> Path:
    """Checkpoints of one octave (``checkpoints/`` itself for a single-octave render)."""
    return ckpt_root / f"octave{octave}" if octaves > 1 else ckpt_root


def render(cfg: DictConfig, run_dir: Path) -> Path:
    """Run the render described by ``cfg``; outputs go to ``run_dir`` (on rank 0)."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build(cfg.model)
    objective = build(cfg.objective)
    objective.validate(model.layer_channels())
    init = build(cfg.init)
    base = cfg.tiling.base_size
    base = tuple(base) if base is not None else init.size()
    if base is None:
        raise UserError("tiling.base_size is null, so init=image with init.path is needed")
    tile = list(cfg.tiling.tile_size)
    sizes = octave_sizes(base, tile, cfg.render.octaves, cfg.render.octave_scale)
    settings = cfg.render
    if settings.tiles_per_step < 1 or settings.decode_chunk < 1:
        raise UserError(
            f"render.tiles_per_step and render.decode_chunk must be >= 1, got "
            f"{settings.tiles_per_step} and {settings.decode_chunk}"
        )
    gif = ProgressGif(settings.gif_max_size)
    ckpt_root = run_dir / "checkpoints"
    start, ckpt = resume_point(ckpt_root, len(sizes)) if cfg.resume else (0, None)
    if cfg.resume and ckpt is None:
        log.info("resume=true but %s holds no checkpoint: starting afresh", ckpt_root)
    canvas: Tensor | None = None
    for octave, size in enumerate(sizes):
        if octave < start:
            continue
        tiling = make_tiling(cfg.tiling, size)
        param = build(cfg.param, tile_size=tuple(tile))
        check_memory(tiling, param, size, cfg, state_dtype(settings.state_dtype))
        if octave == start and ckpt is not None:
            init_canvas = None  # the checkpoint brings the canvas
        elif octave == 0:
            init_canvas = init.canvas(size)
        else:
            assert canvas is not None
            init_canvas = upsample(canvas, size)
        module = make_renderer(
            cfg, model, objective, tiling, param, seed=cfg.seed + octave, init_canvas=init_canvas
        )
        trainer = make_trainer(cfg, run_dir, octave_dir(ckpt_root, octave, len(sizes)), gif)
        log.info(
            "octave %d/%d: canvas %dx%d, %d tiles (%dx%d) of %dx%d",
            octave + 1,
            len(sizes),
            size[0],
            size[1],
            tiling.num_tiles(),
            *tiling.tiling_pattern(),
            *tile,
        )
        trainer.fit(module, ckpt_path=str(ckpt) if octave == start and ckpt else None)
        pixels = module.finish()
        if octave + 1 < len(sizes):
            canvas = module.canvas(pixels)
    if trainer.is_global_zero:
        write_outputs(module, pixels, run_dir, settings.border, gif)
    return run_dir / "render.png"


def write_outputs(
    module: TileRenderer, pixels: Tensor, run_dir: Path, border: int, gif: ProgressGif
) -> None:
    """render.png, render_tiles.png and progress.gif; one full-size canvas alive at a time."""
    save_png(module.canvas(pixels), run_dir / "render.png")
    save_png(module.canvas(pixels, border=border), run_dir / "render_tiles.png")
    gif.save(run_dir / "progress.gif")
    log.info("wrote %s", run_dir / "render.png")
