"""The frame loop of a video: each frame a tiled render that starts where the frame before
ended, moved; the frame is the unit of progress and of resume.

Frame 0 is the render the config describes (from its ``init``: noise or a photo). Every later
frame ``t`` starts from :class:`FrameStarts` applied to frame ``t - 1`` as its PNG holds it (the
8-bit picture, not the floats in memory: a resumed video reads the same start as one that ran
through), is dreamed for ``video.updates_per_frame`` updates of every tile at full size, and is
seeded from ``(seed, t)`` alone. So a video stopped anywhere and resumed with ``resume=true``
continues at its first missing frame and makes the same frames as one that never stopped.
``render.mp4`` is encoded from the PNGs once the last frame is there. A dreamed video may be
cut into segments rendered by separate processes and joined (render/motion/segments.py).

Where a frame starts is pluggable (:func:`frame_starts`): the previous frame zoomed, rotated
and shifted today (render/motion/zoom.py); a dreamed video's previous frame warped by the
scene's motion and blended with its next input frame plugs in the same way.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
import yaml
from omegaconf import DictConfig
from torch import Tensor
from tqdm import tqdm

from render.checkpoints import Resume, check_resume, render_config
from render.errors import RenderStopped, UserError
from render.initial import CanvasInit
from render.models import FeatureModel
from render.motion.decode import add_audio
from render.motion.encode import write_mp4
from render.motion.folder import FRAMES, RECORD, VIDEO, first_missing, frame_path
from render.motion.schedule import Schedule
from render.motion.segments import Segment
from render.motion.video import VideoInit, VideoStarts
from render.motion.zoom import move
from render.objectives import Objective
from render.outputs import atomic_path, save_png
from render.plan import Octave
from render.quality import load_picture
from render.recipe import Recipe
from render.rules import MAX_SEED
from render.run import fit_octaves, log_plan, make_plan, world_size
from render.stopping import StopRequest, requeued

log = logging.getLogger(__name__)


class FrameStarts(Protocol):
    """Where frame ``index`` (from 1) starts, given the frame before it as saved: ``[1, 3, H,
    W]`` in [0, 1] at the frame size."""

    def __call__(self, index: int, previous: Tensor) -> Tensor: ...


class ZoomStarts:
    """The previous frame moved by ``video.zoom``, ``video.rotate``, ``video.drift`` about
    ``video.center`` (render/motion/zoom.py); with none of them, the previous frame itself."""

    def __init__(self, video: DictConfig) -> None:
        """The move of ``video`` (the config's ``video`` section)."""
        self.zoom, self.rotate = float(video.zoom), float(video.rotate)
        self.drift = [float(v) for v in video.drift]
        self.center = [float(v) for v in video.center]
        for key, pair in (("video.drift", self.drift), ("video.center", self.center)):
            if len(pair) != 2:
                raise UserError(f"{key} must be a pair [y, x], got {pair}")

    def __call__(self, index: int, previous: Tensor) -> Tensor:
        return move(previous, self.zoom, self.rotate, self.drift, self.center)


def frame_starts(cfg: DictConfig, init: Any) -> FrameStarts:
    """Where each frame after the first starts, for ``cfg`` and its built ``init``."""
    zoom = ZoomStarts(cfg.video)
    if not isinstance(init, VideoInit):
        return zoom
    if (zoom.zoom, zoom.rotate, zoom.drift) != (1.0, 0.0, [0.0, 0.0]):
        raise UserError(
            f"init=video moves each frame along the video's own motion: leave video.zoom, "
            f"video.rotate and video.drift at 1, 0 and [0, 0] (got {zoom.zoom}, {zoom.rotate}, "
            f"{zoom.drift})"
        )
    return VideoStarts(init)


def frame_seed(seed: int, index: int) -> int:
    """The seed of frame ``index``: ``seed`` itself for frame 0 (the render the config
    describes), and a function of ``(seed, index)`` alone for the others."""
    return (seed + index * 1_000_003) % (MAX_SEED + 1)


def frame_configs(cfg: DictConfig) -> tuple[DictConfig, DictConfig]:
    """The configs of frame 0 (the config's render) and of every later frame (one octave at
    full size, ``video.updates_per_frame`` updates per tile); neither shows a progress bar of
    steps: the frames have theirs."""
    first, later = copy.deepcopy(cfg), copy.deepcopy(cfg)
    later.render.octaves = 1
    later.render.carry_detail = False
    later.render.updates_per_tile = cfg.video.updates_per_frame
    for each in (first, later):
        each.trainer.enable_progress_bar = False
    return first, later


def frame_plans(
    configs: tuple[DictConfig, DictConfig], size: tuple[int, int], from_image: bool
) -> tuple[list[Octave], list[Octave]]:
    """The plans of frame 0 and of every later frame (:func:`frame_configs`), frames of
    ``size``, frame 0 from a picture or not (``from_image``).

    A later frame is one octave; when frame 0 grew from noise through a pyramid, its tiles
    keep that pyramid's context views (taken from frame 0's first octave's scale), so the
    whole frame stays one picture while the objective moves (a morph) instead of growing a
    subject in every tile.
    """
    first = make_plan(configs[0], size, from_image)
    later = make_plan(configs[1], size, from_image=True)[0]
    return first, [replace(later, views=first[-1].views)]


class FramesStopped(RenderStopped):
    """A video stopped by a signal in the middle of a frame: the frames before it are saved."""

    def __init__(self, signum: int, frame: int, frames: int, folder: Path, first: int) -> None:
        """Stopped by ``signum`` in frame ``frame`` (from 0) of ``frames``, the run's frames
        starting at ``first``."""
        saved = (
            f"frames {first} to {frame - 1} are saved in {folder}"
            if frame > first
            else "no frame saved"
        )
        super().__init__(signum, f"in frame {frame} of {frames}: {saved}")


class StopInFrame(pl.Callback):
    """Stop the video at the end of a step once a stop signal arrived; the frame under way is
    dropped (it is made again, the same, by the resume)."""

    def __init__(self, request: StopRequest, stopped: Callable[[int], FramesStopped]) -> None:
        """``stopped(signum)``: the error that says where."""
        self.request, self.stopped = request, stopped

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        if self.request.signum:
            raise self.stopped(self.request.signum)


def _check(cfg: DictConfig) -> None:
    """Refuse what a video does not do (yet)."""
    if world_size(cfg.trainer) > 1:
        raise UserError(
            f"a video (video.frames={cfg.video.frames}) renders in one process: set "
            f"trainer.devices=1 and trainer.num_nodes=1"
        )
    if cfg.checkpoint.every_n_steps > 0:
        raise UserError(
            f"a video resumes from its saved frames, not from checkpoints: leave "
            f"checkpoint.every_n_steps at 0 (got {cfg.checkpoint.every_n_steps})"
        )


def _first_frame(cfg: DictConfig, run_dir: Path, recorded: dict[str, Any], segment: Segment) -> int:
    """The frame to start at: the first missing one of a resumed video made with a config
    that differs only where it may (render/checkpoints.py ``check_resume``), else the
    segment's first."""
    folder = run_dir / FRAMES
    record = folder / RECORD
    done = first_missing(run_dir, segment.first, segment.stop)
    if cfg.resume or requeued():
        if not record.is_file():
            log.info("resume=true but %s holds no frames: starting afresh", folder)
            return segment.first
        check_resume(Resume(0, record, yaml.safe_load(record.read_text())), recorded)
        log.info(
            "resume=true: %d frame(s) in %s, continuing at frame %d",
            done - segment.first,
            folder,
            done,
        )
        return done
    if record.is_file() or done > segment.first:
        raise UserError(
            f"{folder} holds the frames of an earlier video; add resume=true to continue "
            f"it, or give another hydra.run.dir (or delete that folder) to start afresh"
        )
    return segment.first


def render_frames(
    cfg: DictConfig,
    run_dir: Path,
    model: FeatureModel,
    objective: Objective,
    init: Any,
    size: tuple[int, int],
    stop: StopRequest,
    recipe: Recipe,
) -> Path:
    """Render the ``cfg.video.frames`` frames of ``cfg`` (its ``objective`` built, its ``init``
    built, frames of ``size``) into ``run_dir/frames/`` and encode ``render.mp4``; its path.

    A stop signal ends it with :class:`FramesStopped` at the end of the current step.
    """
    _check(cfg)
    video = cfg.video
    frames = int(video.frames)
    segment = Segment.from_config(video, init)
    schedule = Schedule.from_config(cfg, objective)
    for listed in schedule.objectives:
        listed.validate(model.layer_channels())
    layers = set().union(*(o.layers for o in schedule.objectives))
    recorded = render_config(cfg, layers)
    first = _first_frame(cfg, run_dir, recorded, segment)
    folder = run_dir / FRAMES
    if first == segment.first:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / RECORD) as tmp:
            tmp.write_text(yaml.safe_dump(recorded, sort_keys=True))
    starts = frame_starts(cfg, init)
    configs = frame_configs(cfg)
    plans = frame_plans(configs, size, init.size() is not None)
    context_from = plans[0][0].size
    if first == segment.first:
        log_plan(cfg, plans[0], context_from)
    log.info(
        "video: %d frames of %dx%d; each after the first %d steps (%.0f updates per tile)",
        frames,
        *size,
        plans[1][0].steps,
        plans[1][0].updates_per_tile,
    )
    if not segment.whole:
        log.info("video: this render is %s", segment.describe())
    bar = tqdm(
        total=segment.stop - segment.first,
        initial=first - segment.first,
        desc="frames",
        unit="frame",
        disable=not cfg.trainer.enable_progress_bar,
    )
    started, cpu = time.perf_counter(), time.process_time()
    # Lightning's lines of every Trainer ("GPU available: False"), once per frame, say nothing new.
    lightning = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = lightning.level
    lightning.setLevel(logging.WARNING)
    try:
        for index in range(first, segment.stop):
            stopped = partial(
                FramesStopped, frame=index, frames=frames, folder=folder, first=segment.first
            )
            if stop.signum:  # arrived while the last frame was saved
                raise stopped(stop.signum)
            later = index > segment.first
            if later:
                frame_init = CanvasInit(starts(index, _saved(run_dir, index - 1)))
            elif index > 0:  # a segment's first frame: dreamed as the video's first is
                frame_init = CanvasInit(init.frame(index, size))
            else:
                frame_init = init
            seed = frame_seed(cfg.seed, index)
            pl.seed_everything(seed, workers=True, verbose=False)
            fitted = fit_octaves(
                configs[later],
                run_dir,
                model,
                schedule.at(index),
                frame_init,
                plans[later],
                seed=seed,
                gif=None,
                callbacks=_stopper(stop, stopped),
                log_name=f"frame{index:05d}",
                context_from=context_from,
            )
            save_png(fitted.module.canvas(fitted.pixels), frame_path(run_dir, index), recipe)
            del fitted
            bar.update(1)
    finally:
        lightning.setLevel(level)
    bar.close()
    if segment.stop > first:
        done, seconds = segment.stop - first, time.perf_counter() - started
        # Process CPU time is steadier than the wall clock on a shared machine.
        cpu = time.process_time() - cpu
        log.info(
            "video: %d frame(s) in %.1f s, %.2f s per frame (process CPU %.2f s per frame)",
            done,
            seconds,
            seconds / done,
            cpu / done,
        )
    if not segment.whole:
        log.info(
            "video: %s is in %s; when every segment is made, tiledream join FOLDER (the "
            "segments' run folders, or the sweep's folder that holds them) writes the video",
            segment.describe(),
            folder,
        )
        return folder
    written = write_mp4(
        (frame_path(run_dir, t) for t in range(frames)),
        run_dir / VIDEO,
        float(video.fps),
        int(video.crf),
        comment=recipe.text,
    )
    log.info("wrote %s (%d frames at %g fps)", run_dir / VIDEO, written, video.fps)
    if isinstance(init, VideoInit) and add_audio(run_dir / VIDEO, init.path):
        log.info("copied the audio track of %s into %s", init.path, run_dir / VIDEO)
    if not video.png:
        for t in range(frames):
            frame_path(run_dir, t).unlink()
    return run_dir / VIDEO


def _saved(run_dir: Path, index: int) -> Tensor:
    """Frame ``index`` as its PNG holds it."""
    return load_picture(frame_path(run_dir, index))


def _stopper(
    stop: StopRequest, stopped: Callable[[int], FramesStopped]
) -> Callable[[Octave, Path], list[pl.Callback]]:
    """The per-octave callbacks of a frame: only the stop on a signal (``stopped(signum)``
    says where)."""

    def callbacks(octave: Octave, ckpt_dir: Path) -> list[pl.Callback]:
        return [StopInFrame(stop, stopped)]

    return callbacks
