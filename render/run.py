"""One render from a composed config: build the parts, fit per octave, write the outputs."""

from __future__ import annotations

import logging
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger
from torch import Tensor

from render import batching, shards
from render.budget import check_memory
from render.callbacks import BlendCallback
from render.checkpoints import (
    RecordConfig,
    check_resume,
    checkpoint_callback,
    find_resume,
    has_checkpoints,
    octave_dir,
    render_config,
)
from render.config import VideoInit as VideoInitConfig
from render.config import build, check_values
from render.context import between, default_scales
from render.errors import UserError
from render.models import FeatureModel
from render.objectives import Objective
from render.outputs import ProgressGif
from render.params import Parameterization
from render.pictures import Pictures, serve_pictures, write_pictures
from render.plan import (
    Octave,
    octave_schedule,
    octave_sizes,
    octave_updates,
    steps_for,
    updates_per_tile,
    views_per_tile,
)
from render.progress import OctaveProgressBar, TimeEstimate
from render.recipe import Launch, Recipe, Weights, versions
from render.renderer import TileRenderer
from render.rundir import owns_run_dir, run_lock
from render.stopping import (
    StopOnSignal,
    StopRequest,
    requeued,
    stop_signals,
    without_lightning_signals,
)
from render.strategy import TileDDPStrategy
from render.strips import Fetch
from tiling import TilingModule

log = logging.getLogger(__name__)

__all__ = [
    "Fitted",
    "fit_octaves",
    "make_plan",
    "make_renderer",
    "make_tiling",
    "make_trainer",
    "octave_sizes",
    "prepare",
    "render",
    "state_dtype",
]

STATE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

# Expected with a frozen model and a per-batch optimiser; they would only confuse users.
for message in (
    r".*module\(s\) in eval mode.*",
    r".*does not have many workers.*",
    r".*GPU available but not used.*",
    r".*`training_step` returned `None`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    # An octave of a few tiles has epochs shorter than log_every_n_steps; scores are still logged.
    r".*is smaller than the logging interval.*",
    # Checkpoints are taken after the step on purpose: they hold the tiles as they are now.
    r".*manual optimization and every_n_train_steps.*",
    # A resumed render's checkpoint folder holds the checkpoints it resumes from.
    r"Checkpoint directory .* exists and is not empty.*",
    # A resumed video makes again the frame it was stopped in, with that frame's metrics.
    r"Experiment logs directory .* exists and is not empty.*",
):
    warnings.filterwarnings("ignore", message=message)


class _NoAdverts(logging.Filter):
    """Drops Lightning's "💡 Tip" for its cloud logger, printed by every Trainer (each octave)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "💡" not in str(record.msg)


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoAdverts())


def make_tiling(cfg: DictConfig, size: tuple[int, int]) -> TilingModule:
    """``TilingModule`` for one canvas size, with config mistakes reported as UserError."""
    try:
        return TilingModule(
            tile_size=list(cfg.tile_size),
            # The schema's tile_overlap is a list: a ListConfig, which converts to a list.
            tile_overlap=cast("list[int | float]", OmegaConf.to_container(cfg.tile_overlap)),
            base_size=list(size),
            placement=cfg.placement,
            window=cfg.window,
        )
    except (ValueError, TypeError) as error:
        raise UserError(f"tiling: {error}") from None


def make_strategy(strategy: Any) -> Any:
    """Lightning's DDP names become the tile-sharding DDP (gradients stay per rank)."""
    if strategy in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        starts: dict[str, Literal["popen", "spawn"]] = {"ddp": "popen", "ddp_spawn": "spawn"}
        return TileDDPStrategy(start_method=starts.get(strategy, "fork"))
    return strategy


def make_loggers(run_dir: Path, version: str = "") -> list[Logger]:
    """Every step's metrics as CSV, and in TensorBoard when it is installed.

    ``version`` is a subfolder (one per octave of a pyramid: ``metrics/octave1/metrics.csv``).
    """
    loggers: list[Logger] = [CSVLogger(run_dir, name="metrics", version=version)]
    try:
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=version))
    except ModuleNotFoundError:
        pass
    return loggers


def make_trainer(
    cfg: DictConfig,
    run_dir: Path,
    ckpt_dir: Path,
    gif: ProgressGif | None,
    *,
    steps: int | None = None,
    label: str = "render",
    log_version: str = "",
    extra_callbacks: Sequence[pl.Callback] = (),
) -> pl.Trainer:
    """Lightning's Trainer with the render's callbacks; ``trainer.*`` keys pass through.

    ``steps`` (the octave's planned steps) is used unless ``trainer.max_steps`` is given;
    ``label`` names the octave on the progress bar, ``log_version`` its metrics folder;
    ``gif`` receives a small canvas after every blend (None: nothing does).
    """
    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[assignment]
    kwargs["strategy"] = make_strategy(kwargs.get("strategy", "auto"))
    if kwargs.get("max_steps") is None:
        if steps is None:
            raise UserError("trainer.max_steps is not set and no step budget was planned")
        kwargs["max_steps"] = steps
    preview = (gif.add, gif.max_size) if gif is not None else (None, cfg.render.gif_max_size)
    callbacks: list[pl.Callback] = [BlendCallback(cfg.render.blend_every, *preview)]
    callbacks += list(extra_callbacks)
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(OctaveProgressBar(label))
    every = cfg.checkpoint.every_n_steps
    if every > 0:
        callbacks.append(checkpoint_callback(ckpt_dir, every, cfg.checkpoint.keep))
    defaults: dict[str, Any] = {
        "max_epochs": -1,
        # Objectives are read from the device in bulk this often (and at every blend).
        "log_every_n_steps": 50,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "use_distributed_sampler": False,
        "default_root_dir": str(run_dir),
    }
    try:
        trainer = pl.Trainer(
            **{**defaults, **kwargs},
            callbacks=callbacks,
            logger=make_loggers(run_dir, log_version),
            enable_checkpointing=every > 0,
        )
    except TypeError as error:
        raise UserError(f"trainer: {error} (see lightning.pytorch.Trainer's arguments)") from None
    except (ValueError, RuntimeError, MisconfigurationException) as error:
        raise UserError(f"trainer: {error}") from None
    # A stop signal is the render's to handle (render/stopping.py), at a step every rank agrees.
    return without_lightning_signals(trainer)


def make_renderer(
    cfg: DictConfig,
    model: FeatureModel,
    objective: Objective,
    tiling: TilingModule,
    param: Parameterization,
    *,
    seed: int,
    init_canvas: Tensor | None,
    context: Sequence[tuple[int, int]] | None = None,
    shard: tuple[int, int] = (0, 1),
    init_top: int = 0,
    alpha: bool = False,
    photo: Tensor | None = None,
) -> TileRenderer:
    """The Lightning module for one canvas, with the config's transforms and optimiser;
    ``context``: the context views' thumbnail sizes, taken in turn (render/context.py);
    ``shard``: (rank, world size) of this process; ``init_canvas``: canvas rows from
    ``init_top`` that cover this rank's tiles; ``alpha``: accumulate the transparency map;
    ``photo``: the initial photo at the canvas's size, for objectives that compare with it.
    """
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
        context=context,
        shard=shard,
        init_top=init_top,
        alpha=alpha,
        photo=photo,
    )


def context_scales(cfg: DictConfig, first: tuple[int, int], final: tuple[int, int]) -> list[float]:
    """``render.context_scales`` of a pyramid from ``first`` (the first octave's size) to
    ``final``, the default's when null."""
    given = cfg.render.context_scales
    scales = list(default_scales(first, final) if given is None else given)
    if not scales:
        raise UserError("render.context_scales must list at least one scale, got []")
    return scales


def context_sizes(
    cfg: DictConfig, first: tuple[int, int], own: tuple[int, int], final: tuple[int, int]
) -> list[tuple[int, int]]:
    """The thumbnail sizes of an octave of canvas size ``own``'s context views in a pyramid
    from ``first`` to ``final``, one per :func:`context_scales` (0: ``first``; 1: ``own``).
    """
    return [between(first, own, scale) for scale in context_scales(cfg, first, final)]


def state_dtype(name: str) -> torch.dtype:
    """``render.state_dtype`` as a torch dtype."""
    if name not in STATE_DTYPES:
        raise UserError(f"render.state_dtype must be one of {list(STATE_DTYPES)}, got {name!r}")
    return STATE_DTYPES[name]


def next_octave_canvas(
    canvas: Tensor,
    size: tuple[int, int],
    photo: Tensor | None = None,
    next_photo: Tensor | None = None,
    headroom: float = 0.0,
    resize: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """The start of the next octave: the canvas upsampled, or, when ``photo`` is given (the
    start of the octave that made ``canvas``), the classic DeepDream step: the detail this
    octave added (canvas - photo) upsampled onto ``next_photo``, the photo at the next size.

    ``headroom`` maps the result into ``[headroom, 1 - headroom]``: a saturated pixel encodes
    to a pre-sigmoid value whose gradient is nearly zero, so the next octave could not add
    detail there.

    ``resize`` (the whole canvas to ``size`` unless given) enlarges ``canvas``: with several
    processes, rows of it to this rank's rows of the next canvas (``next_photo`` then holds
    just those rows). Both compute each row alike (render/shards.py ``upsample_rows``), so the
    picture does not depend on the number of processes: the optimiser turns the last bit of a
    difference into a visible one.
    """
    if not 0 <= headroom < 0.5:
        raise UserError(f"render.octave_headroom must be in [0, 0.5), got {headroom}")
    if resize is None:
        resize = partial(shards.upsample, size=size)
    if photo is None or next_photo is None:
        start = resize(canvas).clamp(0, 1)
    else:
        start = (next_photo + resize(canvas - photo)).clamp(0, 1)
    return start.mul_(1 - 2 * headroom).add_(headroom) if headroom else start


def next_octave_rows(
    module: TileRenderer,
    pixels: Tensor,
    tiling: TilingModule,
    shard: tuple[int, int],
    photo: Tensor | None,
    next_photo: Tensor | None,
    headroom: float,
) -> tuple[int, Tensor]:
    """``(top, rows)``: the rows of the next octave's start (:func:`next_octave_canvas`) that
    cover this rank's tiles of ``tiling``, from ``module``'s canvas, whose own tiles are
    ``pixels`` (a collective: each rank receives the tiles over the rows it enlarges).
    """
    rank, world = shard
    size_in = (module.tiling._base_size[0], module.tiling._base_size[1])
    size = (tiling._base_size[0], tiling._base_size[1])
    blocks = [shards.owned_tiles(tiling.num_tiles(), r, world) for r in range(world)]
    targets = [shards.tile_rows(tiling, block) for block in blocks]
    sources = [shards.source_rows(rows, size_in[0], size[0]) for rows in targets]
    band = module.canvas_rows(pixels, sources)
    (top, bottom), (source_top, source_bottom) = targets[rank], sources[rank]
    rows = range(top, bottom)
    resize = partial(
        shards.upsample_rows, top=source_top, size_in=size_in, size_out=size, rows=rows
    )
    if photo is not None:
        photo = photo[:, :, source_top:source_bottom]
    if next_photo is not None:
        next_photo = next_photo[:, :, top:bottom]
    return top, next_octave_canvas(band, size, photo, next_photo, headroom, resize)


def world_size(trainer: DictConfig) -> int:
    """Processes of a run (``devices * num_nodes`` when both are counts), for the step budget."""
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    count = devices if isinstance(devices, int) and devices > 0 else 1
    return count * (nodes if isinstance(nodes, int) and nodes > 0 else 1)


def canvas_size(cfg: DictConfig, init: Any) -> tuple[int, int]:
    """The full canvas: ``tiling.base_size``, or the size of ``init`` (a photo) when null."""
    base = cfg.tiling.base_size
    size = tuple(base) if base is not None else init.size()
    if size is None:
        raise UserError("tiling.base_size is null, so init=image with init.path is needed")
    return (int(size[0]), int(size[1]))


def decide_tiles_per_step(
    cfg: DictConfig,
    model: FeatureModel,
    objective: Objective,
    base: tuple[int, int],
    from_image: bool,
) -> int:
    """``render.tiles_per_step`` as a number (render/batching.py), written into ``cfg``.

    Every later reader (the plan, the renderer, the checkpoints) sees the number, measured
    once for auto with as many images per tile as the last octave's steps show the model.
    """
    settings, tile = cfg.render, (int(cfg.tiling.tile_size[0]), int(cfg.tiling.tile_size[1]))
    octaves = octave_schedule(base, tile, settings.octaves, settings.octave_scale, from_image)[0]
    settings.tiles_per_step = batching.tiles_per_step(
        cfg,
        model,
        objective,
        make_tiling(cfg.tiling, base).num_tiles(),
        world_size(cfg.trainer),
        views_per_tile(settings.context, from_image, octaves - 1),
    )
    return int(settings.tiles_per_step)


def make_plan(cfg: DictConfig, base: tuple[int, int], from_image: bool) -> list[Octave]:
    """The octaves of a render and the steps of each (see :mod:`render.plan`)."""
    tile = (int(cfg.tiling.tile_size[0]), int(cfg.tiling.tile_size[1]))
    settings = cfg.render
    octaves, scale = octave_schedule(
        base, tile, settings.octaves, settings.octave_scale, from_image
    )
    given = cfg.trainer.get("max_steps")
    world = world_size(cfg.trainer)
    plan = []
    sizes = octave_sizes(base, list(tile), octaves, scale)
    for index, size in enumerate(sizes):
        tiles = make_tiling(cfg.tiling, size).num_tiles()
        if given is None:
            budget = octave_updates(settings, sizes, index)
            steps = steps_for(tiles, settings.tiles_per_step, budget, world)
        else:
            steps = int(given)
        updates = updates_per_tile(tiles, settings.tiles_per_step, max(steps, 0), world)
        views = views_per_tile(settings.context, from_image, index)
        plan.append(Octave(index, size, tiles, steps, updates, views))
    return plan


def log_plan(cfg: DictConfig, plan: Sequence[Octave], context_from: tuple[int, int]) -> None:
    """One line per octave of ``cfg``'s ``plan``: canvas, tiles, steps, updates per tile and
    the context views' scales (of a pyramid from ``context_from``); then the totals."""
    tile, tiles_per_step = list(cfg.tiling.tile_size), int(cfg.render.tiles_per_step)
    views = ""
    if any(o.views > 1 for o in plan):
        scales = context_scales(cfg, context_from, plan[-1].size)
        views = f", each tile also scored in its context view, render.context_scales={scales}"
    for o in plan:
        log.info(
            "octave %d/%d: canvas %dx%d, %d tiles of %dx%d, %d steps of up to %d tiles "
            "(%.0f updates per tile%s)",
            o.index + 1,
            len(plan),
            *o.size,
            o.tiles,
            *tile,
            o.steps,
            tiles_per_step,
            o.updates_per_tile,
            views if o.views > 1 else "",
        )
    updates = sum(o.steps * min(tiles_per_step, o.tiles) for o in plan)
    log.info(
        "render: %d steps, %d tile updates; the expected time is logged after the first steps",
        sum(o.steps for o in plan),
        updates,
    )


def render(
    cfg: DictConfig,
    run_dir: Path,
    *,
    model: FeatureModel | None = None,
    objective: Objective | None = None,
    launch: Launch | None = None,
) -> Path:
    """Run the render described by ``cfg``; outputs go to ``run_dir`` (on rank 0).

    ``model`` and ``objective``, when given (the Python API), replace ``cfg.model`` and
    ``cfg.objective``. ``launch``: how the render was asked for, for the recipe every picture
    carries (default: a call of this function). A second render into the same ``run_dir`` is
    refused while this one runs.
    SIGTERM (and SLURM's warning signal) stops the render at the next step with a checkpoint
    at that step: :class:`render.errors.RenderStopped` is raised, and no image is written.
    """
    check_values(cfg)
    launch = launch or Launch(program=("render.run.render",))
    with stop_signals() as stop:
        if not owns_run_dir():
            return _render(cfg, run_dir, model, objective, stop, launch)
        with run_lock(run_dir):
            return _render(cfg, run_dir, model, objective, stop, launch)


def prepare(
    cfg: DictConfig, model: FeatureModel, objective: Objective
) -> tuple[Any, tuple[int, int]]:
    """The checks a render makes before it allocates anything (the objective's layers and
    channels in the model, the initial image, an output that holds the canvas, tiles that fit
    it); returns the built ``cfg.init`` and the canvas size.
    """
    objective.validate(model.layer_channels())
    init = build(cfg.init)
    if cfg.init.get("_target_") == VideoInitConfig._target_:
        init.configure(cfg)  # video.frames and video.fps become the video's
    if cfg.get("video") is not None and (cfg.video.frames > 0 or cfg.video.segments > 1):
        # PyAV and OpenCV only for videos: the GPU machines the project is checked on lack them.
        from render.motion.segments import Segment

        Segment.from_config(cfg.video, init)
    if objective.photo_layers and init.size() is None:
        raise UserError(
            f"the objective {objective!r} compares the render with the photo it starts from; "
            f"give one: init=image init.path=PHOTO"
        )
    base = canvas_size(cfg, init)
    Pictures.choose(cfg.output, base)
    make_tiling(cfg.tiling, base)
    return init, base


def _render(
    cfg: DictConfig,
    run_dir: Path,
    model: FeatureModel | None,
    objective: Objective | None,
    stop: StopRequest,
    launch: Launch,
) -> Path:
    started = time.perf_counter()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build(cfg.model) if model is None else model
    objective = build(cfg.objective) if objective is None else objective
    init, base = prepare(cfg, model, objective)
    weights = Weights.of(model)
    if launch.replaying is not None and owns_run_dir():
        differences = launch.replaying.differences(versions(), weights)
        if differences:
            log.warning(
                "replay: this machine differs from the recipe, the pixels may too: %s",
                "; ".join(differences),
            )
    tile = list(cfg.tiling.tile_size)
    settings = cfg.render
    from_image = init.size() is not None
    decide_tiles_per_step(cfg, model, objective, base, from_image)
    # The full-size octave needs the most: refuse before the first octave, not after it.
    check_memory(
        make_tiling(cfg.tiling, base),
        build(cfg.param, tile_size=tuple(tile)),
        base,
        cfg,
        state_dtype(settings.state_dtype),
        world_size(cfg.trainer),
    )
    if cfg.get("video") is not None and cfg.video.frames > 0:
        # A video: a sequence of renders like the one below, one per frame (render/motion/).
        from render.motion.frames import render_frames

        written = render_frames(
            cfg, run_dir, model, objective, init, base, stop, Recipe.make(cfg, launch, weights)
        )
        log.info("video: done in %.1f s", time.perf_counter() - started)
        return written
    plan = make_plan(cfg, base, from_image)
    log_plan(cfg, plan, plan[0].size)
    gif = ProgressGif(settings.gif_max_size)
    ckpt_root = run_dir / "checkpoints"
    # Recorded in every checkpoint, with tiles_per_step as measured: what a resume compares.
    recorded = render_config(cfg, objective.layers)
    start, ckpt = 0, None
    resume = cfg.resume or requeued()
    found = find_resume(ckpt_root, set_aside=owns_run_dir()) if resume else None
    if found is not None:
        check_resume(found, recorded)
        start, ckpt = found.octave, found.path
        log.info("resume=true: continuing octave %d from %s", start + 1, ckpt)
    elif resume:
        log.info("resume=true but %s holds no checkpoint: starting afresh", ckpt_root)
    elif has_checkpoints(ckpt_root):
        # Mixed with this render's (a stopped render saves one even with checkpoints off), they
        # could be taken for its own by a later resume.
        raise UserError(
            f"{ckpt_root} holds the checkpoints of an earlier render; add resume=true to "
            f"continue it, or give another hydra.run.dir (or delete that folder) to start afresh"
        )

    def callbacks(octave: Octave, ckpt_dir: Path) -> list[pl.Callback]:
        return [
            TimeEstimate(plan, octave.index, settings.tiles_per_step),
            RecordConfig(recorded),
            # After the blend, which is added first: it changes the tiles of its step.
            StopOnSignal(stop, ckpt_dir, octave.index, len(plan)),
        ]

    fitted = fit_octaves(
        cfg,
        run_dir,
        model,
        objective,
        init,
        plan,
        seed=cfg.seed,
        gif=gif,
        callbacks=callbacks,
        resume=(start, ckpt),
    )
    tiling, module, pixels, trainer = fitted

    # Every rank takes part in the writing: rank 0 asks for the tiles of each strip, and each
    # rank sends it those it owns, so no process ever holds the whole canvas.
    def fetch(idx: Tensor) -> Tensor:
        tiles = module.fetch(pixels, idx)
        assert tiles is not None  # rank 0, the writer
        return tiles

    if trainer.is_global_zero:
        recipe = Recipe.make(cfg, launch, weights)
        write_outputs(tiling, fetch, run_dir, settings.border, gif, cfg.output, recipe=recipe)
    elif module.sharded:
        serve_pictures(tiling, partial(module.fetch, pixels), Pictures.choose(cfg.output, base))
    if stop.signum:
        # Every step had been taken: finishing the outputs was quicker than a resume.
        log.warning(
            "received %s after the last step: the render finished and wrote its outputs",
            signal.Signals(stop.signum).name,
        )
    cuda = (
        f", peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
        if torch.cuda.is_available()
        else ""
    )
    log.info("render: done in %.1f s%s", time.perf_counter() - started, cuda)
    return run_dir / Pictures.choose(cfg.output, base).main_file()


class Fitted(NamedTuple):
    """The last octave of a render: its tiling, its module, this rank's tiles and its trainer."""

    tiling: TilingModule
    module: TileRenderer
    pixels: Tensor
    trainer: pl.Trainer


def fit_octaves(
    cfg: DictConfig,
    run_dir: Path,
    model: FeatureModel,
    objective: Objective,
    init: Any,
    plan: Sequence[Octave],
    *,
    seed: int,
    gif: ProgressGif | None,
    callbacks: Callable[[Octave, Path], list[pl.Callback]],
    resume: tuple[int, Path | None] = (0, None),
    log_name: str = "",
    context_from: tuple[int, int] | None = None,
) -> Fitted:
    """Optimise the canvas octave by octave from ``init`` (a built ``cfg.init``, or a
    :class:`render.initial.CanvasInit`) along ``plan``; the last octave's state.

    Octave ``k`` is seeded with ``seed + k``; ``callbacks(octave, checkpoint folder)`` are
    added to its trainer; ``resume``: the octave (from 0) to start at and the checkpoint it
    continues from. Metrics go to ``metrics/<log_name>/octave<k>`` (without empty parts).
    ``context_from``: the canvas size whose scale context views start at (default: the plan's
    first octave's).
    """
    tile = list(cfg.tiling.tile_size)
    settings = cfg.render
    start, ckpt = resume
    ckpt_root = run_dir / "checkpoints"
    canvas: Tensor | None = None  # the last octave's canvas (one process)
    previous: tuple[TileRenderer, Tensor] | None = None  # its module and own tiles (several)
    photo: Tensor | None = None
    fitted: Fitted | None = None
    for octave in plan:
        size = octave.size
        if octave.index < start:
            continue
        tiling = make_tiling(cfg.tiling, size)
        param = build(cfg.param, tile_size=tuple(tile))
        check_memory(
            tiling, param, size, cfg, state_dtype(settings.state_dtype), world_size(cfg.trainer)
        )
        next_photo = init.canvas(size) if settings.carry_detail else None
        label = f"octave {octave.index + 1}/{len(plan)}"
        ckpt_dir = octave_dir(ckpt_root, octave.index, len(plan))
        octave_name = f"octave{octave.index + 1}" if len(plan) > 1 else ""
        trainer = make_trainer(
            cfg,
            run_dir,
            ckpt_dir,
            gif,
            steps=octave.steps,
            label=label,
            log_version="/".join(part for part in (log_name, octave_name) if part),
            extra_callbacks=callbacks(octave, ckpt_dir),
        )
        # The launcher's environment names the rank before the processes meet.
        shard = (trainer.global_rank, trainer.world_size)
        init_top = 0
        if octave.index == start and ckpt is not None:
            init_canvas = None  # the checkpoint brings the canvas
        elif octave.index == 0:
            init_canvas = init.canvas(size)
        elif previous is not None:
            init_top, init_canvas = next_octave_rows(
                *previous, tiling, shard, photo, next_photo, settings.octave_headroom
            )
        else:
            assert canvas is not None
            init_canvas = next_octave_canvas(
                canvas, size, photo, next_photo, settings.octave_headroom
            )
        canvas = previous = None
        module = make_renderer(
            cfg,
            model,
            objective,
            tiling,
            param,
            seed=seed + octave.index,
            init_canvas=init_canvas,
            context=(
                context_sizes(cfg, context_from or plan[0].size, size, plan[-1].size)
                if octave.views > 1
                else None
            ),
            shard=shard,
            init_top=init_top,
            # Only the last octave's gradients make the transparency map: they are taken with
            # respect to the written picture's own pixels, and its tiles' context views bring
            # in the composition the first octave set (the gradient of a tile's score in its
            # view reaches its pixels). An earlier octave's map would have to be enlarged and
            # rescaled to another pixel size to be added, and would blur the last one's.
            alpha=cfg.output.alpha and octave.index == len(plan) - 1,
            photo=init.canvas(size) if objective.photo_layers else None,
        )
        del init_canvas
        trainer.fit(module, ckpt_path=str(ckpt) if octave.index == start and ckpt else None)
        pixels = module.finish()
        fitted = Fitted(tiling, module, pixels, trainer)
        if octave.index + 1 < len(plan):
            if module.sharded:
                previous = (module, pixels)
            else:
                canvas = module.canvas(pixels)
            # The photo at this octave's size: the next octave adds the detail dreamed here
            # (canvas - photo) to the photo at its own size (carry_detail only).
            photo = next_photo
            fitted = None
            del module, pixels
    assert fitted is not None, "a plan has at least one octave, and the last is fitted"
    return fitted


def write_outputs(
    tiling: TilingModule,
    fetch: Fetch,
    run_dir: Path,
    border: int,
    gif: ProgressGif,
    output: DictConfig,
    *,
    recipe: Recipe,
) -> None:
    """progress.gif and the full-size pictures ``output`` chooses (render/pictures.py), written
    from the canvas strips (no full-size float canvas), each carrying ``recipe``."""
    gif.save(run_dir / "progress.gif", recipe)
    chosen = Pictures.choose(output, (tiling._base_size[0], tiling._base_size[1]))
    write_pictures(tiling, fetch, run_dir, border, chosen, recipe=recipe)
    log.info("wrote %s", run_dir / chosen.main_file())
