"""Where a video's frames live in its run folder: ``frames/00042.png``, with the config they
were made with (``frames/config.yaml``, what a resume and a join compare), and ``render.mp4``."""

from __future__ import annotations

from pathlib import Path

#: The frames' folder in the run directory, and the config they were made with.
FRAMES = "frames"
RECORD = "config.yaml"
#: The video's file in the run directory.
VIDEO = "render.mp4"


def frame_path(run_dir: Path, index: int) -> Path:
    """Frame ``index``'s PNG: ``frames/00042.png``."""
    return run_dir / FRAMES / f"{index:05d}.png"


def first_missing(run_dir: Path, start: int, stop: int) -> int:
    """The first frame of ``[start, stop)`` whose PNG is not in ``run_dir`` (``stop`` when all
    are)."""
    return next((t for t in range(start, stop) if not frame_path(run_dir, t).is_file()), stop)
