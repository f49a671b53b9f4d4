"""What writing a render's pictures costs: peak memory above the render itself, time and sizes.

    python -m scripts.bench.outputs RUN_DIR [OVERRIDES...]
    python -m scripts.bench.outputs RUN_DIR --synthetic SIZE

Renders in this process with ``render.run.write_outputs`` wrapped: the peak resident memory
before the writing (``getrusage``'s high-water mark: the render itself) against the peak during
it (sampled every 10 ms, and the high-water mark after), the time of each file (from the log),
the size of each output and the seconds between steps; the writing rank also leaves them in the
run folder (``FIGURES``), as several processes share one stdout. ``--synthetic SIZE`` writes a
SIZE x SIZE canvas of made-up tiles (made when fetched, so nothing but the writing holds
memory), with the default outputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytorch_lightning as pl
import torch

import render.run
from render.config import compose_config
from render.outputs import ProgressGif
from render.recipe import Launch, Recipe, Weights
from render.run import make_tiling

MB = 2**20
#: Where the writing rank leaves its figures in the run folder.
FIGURES = "bench_outputs.json"


def high_water() -> int:
    """This process's peak resident memory so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Sampler(threading.Thread):
    """The largest resident memory seen while it runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        process = psutil.Process()
        while not self.done.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(0.01)


class StepTimer(pl.Callback):
    """Seconds between consecutive steps' ends (the second step on: the first warms up)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last: float | None = None

    def on_train_batch_end(self, *_: Any) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.times.append(now - self.last)
        self.last = now


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def main(run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Render with ``overrides`` into ``run_dir``; the memory, time and sizes of the writing."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    figures: dict[str, Any] = {"overrides": overrides}
    write = render.run.write_outputs

    def measured(*args: Any, **kwargs: Any) -> None:
        before = high_water()
        start_rss = psutil.Process().memory_info().rss
        sampler = Sampler()
        sampler.start()
        started = time.perf_counter()
        try:
            write(*args, **kwargs)
        finally:
            sampler.done.set()
            sampler.join()
        figures.update(
            write_s=round(time.perf_counter() - started, 1),
            render_peak_mb=round(before / MB),
            rss_at_write_start_mb=round(start_rss / MB),
            write_peak_sampled_mb=round(sampler.peak / MB),
            peak_after_write_mb=round(high_water() / MB),
            write_peak_above_render_mb=round((max(sampler.peak, high_water()) - before) / MB),
            write_peak_above_its_start_mb=round((sampler.peak - start_rss) / MB),
        )

    render.run.write_outputs = measured
    make_trainer = render.run.make_trainer

    def timed_trainer(*args: Any, **kwargs: Any) -> pl.Trainer:
        timer = StepTimer()
        kwargs["extra_callbacks"] = [*kwargs.get("extra_callbacks", []), timer]
        figures["step_times"] = timer.times
        return make_trainer(*args, **kwargs)

    render.run.make_trainer = timed_trainer
    started = time.perf_counter()
    if overrides[:1] == ["--synthetic"]:
        size = int(overrides[1])
        cfg = compose_config([f"tiling.base_size=[{size},{size}]"])
        tiling = make_tiling(cfg.tiling, (size, size))
        coords = torch.tensor(tiling.tile_coords(), dtype=torch.float32)
        ramp = torch.arange(cfg.tiling.tile_size[0], dtype=torch.float32)

        def fetch(idx: torch.Tensor) -> torch.Tensor:
            """Waves over the canvas, a little different in every tile (so blending shows)."""
            y = (coords[idx, 0, None] + ramp)[:, None, :, None]
            x = (coords[idx, 1, None] + ramp)[:, None, None, :]
            phase = torch.tensor([0.0, 2.0, 4.0])[None, :, None, None] + idx[:, None, None, None]
            return 0.5 + 0.4 * torch.sin(x / 97 + phase * 0.01) * torch.cos(y / 131 + phase)

        # A recipe like a render's, so that writing it is measured too.
        launch = Launch(
            program=("python", "-m", "scripts.bench.outputs"),
            overrides=(f"tiling.base_size=[{size},{size}]",),
        )
        recipe = Recipe.make(cfg, launch, Weights("synthetic", None, None))
        render.run.write_outputs(
            tiling, fetch, run_dir, 2, ProgressGif(), cfg.output, recipe=recipe
        )
    else:
        render.run.render(compose_config(overrides), run_dir)
    figures["total_s"] = round(time.perf_counter() - started, 1)
    figures["sizes_mb"] = {
        name: round(size_of(run_dir / name) / MB, 1)
        for name in ("render.png", "render_tiles.png", "render.tif", "render_files")
        if (run_dir / name).exists()
    }
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the folder the render writes into")
    parser.add_argument(
        "overrides", nargs=argparse.REMAINDER, help="Hydra overrides, or --synthetic SIZE"
    )
    args = parser.parse_args()
    result = main(args.run_dir, args.overrides)
    if "write_s" in result:  # the writing rank: the others serve it their tiles
        (args.run_dir / FIGURES).write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
