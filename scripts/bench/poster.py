"""The largest poster a time budget allows, rendered and looked at (gpu_check.py, section 5).

:func:`choose_size` picks the canvas from the measured seconds per tile and per blend
(:class:`PassRate`, section 4's largest pass) and the render's octaves; :func:`run_render` runs
``scripts/render.py`` in a child whose own peak resident memory it reads (``os.wait4``);
:func:`look` reads the picture through libvips without decoding it at full size: the
composition levels (render/quality.py) on a level of ``render.tif`` no larger than
:data:`LEVELS_MAX`, a whole JPEG and a full-size crop from the centre.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from render.plan import octave_schedule, octave_sizes, octave_updates, views_per_tile
from render.quality import recognition_by_level
from render.run import make_tiling

#: Canvas sides tried, largest first (the poster_16k preset, then by halves).
POSTER_SIZES = [16384, 8192, 4096, 2048]
#: A fresh interpreter importing torch, Lightning and Hydra, and building the model.
STARTUP_S = 30.0
#: Writing the deep zoom and the TIFF: 150 s for 16384x16384 on 2 cores (docs/benchmarks.md).
WRITE_S_PER_MPIXEL = 0.6
#: Estimates are of the steps at section 4's tiles per step: kept with this margin.
MARGIN = 1.3
#: The levels are measured on a picture no larger than this per side.
LEVELS_MAX = 4096
WHOLE_MAX = 2048
CROP = 1024
MB = 2**20


@dataclass(frozen=True)
class PassRate:
    """Seconds per tile update and per blended megapixel, from one measured pass."""

    seconds_per_tile: float
    blend_s_per_mpixel: float


def poster_octaves(cfg: DictConfig) -> list[tuple[int, int, int]]:
    """``(side, tiles, views per tile)`` of each octave of a square render from noise."""
    base = (int(cfg.tiling.base_size[0]), int(cfg.tiling.base_size[1]))
    tile = (int(cfg.tiling.tile_size[0]), int(cfg.tiling.tile_size[1]))
    octaves, scale = octave_schedule(base, tile, cfg.render.octaves, cfg.render.octave_scale, False)
    return [
        (
            size[0],
            make_tiling(cfg.tiling, size).num_tiles(),
            views_per_tile(cfg.render.context, False, i),
        )
        for i, size in enumerate(octave_sizes(base, list(tile), octaves, scale))
    ]


def estimate_s(cfg: DictConfig, rate: PassRate) -> float:
    """Seconds of a whole render of ``cfg``: start, steps and blends of every octave, outputs."""
    settings = cfg.render
    blends_per_update = 1 / settings.blend_every if settings.blend_every else 0.0
    total = STARTUP_S
    octaves = poster_octaves(cfg)
    sizes = [(side, side) for side, _, _ in octaves]
    for index, (side, tiles, views) in enumerate(octaves):
        updates = octave_updates(settings, sizes, index)
        total += MARGIN * updates * tiles * views * rate.seconds_per_tile
        total += updates * blends_per_update * rate.blend_s_per_mpixel * side**2 / 1e6
    side = int(cfg.tiling.base_size[0])
    return total + WRITE_S_PER_MPIXEL * side**2 / 1e6


def choose_size(estimates: dict[int, float], seconds: float) -> int | None:
    """The largest side whose estimate fits in ``seconds``; None when none does."""
    return max((side for side, need in estimates.items() if need <= seconds), default=None)


@dataclass
class Finished:
    """How a render child ended: exit status (text), wall seconds, its own peak RSS in MB."""

    code: str
    seconds: float
    peak_rss_mb: float | None


def run_render(command: Sequence[str], log: Path, timeout: float, **popen: Any) -> Finished:
    """Run ``command`` with its output in ``log``; past ``timeout`` it gets SIGTERM (the render
    saves a checkpoint and exits), then SIGKILL. ``os.wait4`` gives this child's own peak RSS,
    which ``RUSAGE_CHILDREN`` would mix with earlier children's."""
    started = time.monotonic()
    with log.open("w") as out:
        out.write(" ".join(command) + "\n\n")
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)
    code, usage, stopped = None, None, ""
    try:
        while code is None:
            pid, status, rusage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                code, usage = os.waitstatus_to_exitcode(status), rusage
                break
            waited = time.monotonic() - started
            if not stopped and waited > timeout:
                stopped = f"stopped (SIGTERM) after {timeout:.0f} s"
                process.send_signal(signal.SIGTERM)
            elif stopped and waited > timeout + 60:
                process.kill()
            time.sleep(0.2)
    finally:
        if code is None:  # interrupted (the section's deadline): leave no render behind
            process.kill()
            process.wait()
    process.returncode = code
    text = f"{code}, {stopped}" if stopped else str(code)
    peak = usage.ru_maxrss / 1024 if usage is not None else None  # kilobytes on Linux
    return Finished(text, time.monotonic() - started, peak)


def peak_cuda_mb(log: str) -> str:
    """The render's own "peak CUDA memory N MB", or why there is none."""
    found = re.findall(r"peak CUDA memory (\d+) MB", log)
    return f"{found[-1]} MB" if found else "none logged (no CUDA)"


def tiles_per_step(log: str) -> str:
    """What ``render.tiles_per_step=auto`` (or its default) chose and why, from the log."""
    found = re.findall(r"render\.tiles_per_step=(?:auto|null): ([^\n]*)", log)
    return found[-1] if found else "as given (see the overrides)"


def outputs(run_dir: Path) -> list[str]:
    """``name (size)`` of each picture file of a run; folders as their files' total."""
    names = ["render.png", "render.tif", "render.dzi", "render_files", "viewer.html"]
    found = []
    for name in names:
        path = run_dir / name
        if path.is_dir():
            files = [p for p in path.rglob("*") if p.is_file()]
            levels = sum(1 for p in path.iterdir() if p.is_dir())
            size = sum(p.stat().st_size for p in files)
            found.append(f"{name}/ ({levels} levels, {len(files)} tiles, {file_size(size)})")
        elif path.is_file():
            found.append(f"{name} ({file_size(path.stat().st_size)})")
    return found


def file_size(size: int) -> str:
    """``12.3 MB``, or ``45 kB`` below a megabyte."""
    return f"{size / MB:.1f} MB" if size >= MB else f"{size / 1024:.0f} kB"


def to_tensor(image: Any, device: torch.device) -> torch.Tensor:
    """A libvips RGB(A) image as a float [1, 3, H, W] tensor in [0, 1]."""
    pixels = np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=[image.height, image.width, image.bands],
    )
    return torch.from_numpy(pixels[..., :3].copy()).to(device).permute(2, 0, 1)[None].float() / 255


def look(
    picture: Path,
    out: Path,
    model: Any,
    class_index: int,
    tile: Sequence[int],
    device: torch.device,
) -> tuple[str, dict[int, float], list[str]]:
    """(size read for the levels, share of windows of the class per level, files written to
    ``out``): the levels on the picture shrunk to at most :data:`LEVELS_MAX` (from the TIFF's
    pyramid), windows down to about one tile of the full-size canvas; ``poster.jpg`` (whole, at
    most :data:`WHOLE_MAX`) and ``poster-crop.png`` (:data:`CROP` square at full size, centre).
    """
    import pyvips

    full = pyvips.Image.new_from_file(str(picture), access="random")
    side = max(full.width, full.height)
    small = pyvips.Image.thumbnail(str(picture), min(LEVELS_MAX, side))
    shrink = small.width / full.width
    canvas = to_tensor(small, device)
    model.to(device)
    levels = recognition_by_level(model, canvas, class_index, [t * shrink for t in tile])
    pyvips.Image.thumbnail(str(picture), min(WHOLE_MAX, side)).write_to_file(
        str(out / "poster.jpg"), Q=90
    )
    crop_w, crop_h = min(CROP, full.width), min(CROP, full.height)
    left, top = (full.width - crop_w) // 2, (full.height - crop_h) // 2
    full.crop(left, top, crop_w, crop_h).write_to_file(str(out / "poster-crop.png"))
    written = [
        f"poster.jpg ({min(WHOLE_MAX, side)} px, whole)",
        f"poster-crop.png ({crop_w}x{crop_h} at full size, from ({left}, {top}))",
    ]
    return f"{small.width}x{small.height}", levels, written
