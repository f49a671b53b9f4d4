"""A real render timed step by step, and the same work without Lightning (the probe)."""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from render import batching
from render.budget import check_memory
from render.config import build, compose_config
from render.models import FeatureModel
from render.outputs import ProgressGif
from render.renderer import TileRenderer
from render.run import make_renderer, make_tiling, make_trainer, state_dtype
from render.schedule import TileBatches, step_generator
from scripts.bench.common import MB, free_memory, median, quiet, synchronize

#: A callable run between two render steps (its time is taken out of the step); returns timings.
Probe = Callable[[], dict[str, float]]


class StepTimer(pl.Callback):
    """Records when each batch starts and ends; at the end of fit, times ``blend()`` calls.

    ``probe``, when given, runs after every batch (Lightning-free reference work, timed by
    itself); its wall time is subtracted from the step it interrupts, so that the render and
    the reference are measured side by side under the same machine load. ``profile_from``
    starts torch.profiler at that batch.
    """

    def __init__(
        self, blend_repeats: int = 0, probe: Probe | None = None, profile_from: int | None = None
    ) -> None:
        """Time ``blend_repeats`` blends after the last step; run ``probe`` between steps."""
        self.blend_repeats = blend_repeats
        self.probe = probe
        self.profile_from = profile_from
        self.profiler: torch.profiler.profile | None = None
        # Wall-clock and process CPU seconds (all threads) at each batch start/end.
        self.starts: list[float] = []
        self.starts_cpu: list[float] = []
        self.ends: list[float] = []
        self.probe_s: list[float] = []
        self.probe_cpu: list[float] = []
        self.probes: list[dict[str, float]] = []
        self.sizes: list[int] = []
        self.blends: list[float] = []

    def _now(self, pl_module: pl.LightningModule) -> float:
        synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.profile_from is not None and len(self.starts) == self.profile_from:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if pl_module.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.start()
        self.sizes.append(len(batch))
        self.starts.append(self._now(pl_module))
        self.starts_cpu.append(time.process_time())

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        end, end_cpu = self._now(pl_module), time.process_time()
        self.ends.append(end)
        if self.probe is None:
            self.probe_s.append(0.0)
            self.probe_cpu.append(0.0)
            return
        with torch.enable_grad():
            self.probes.append(self.probe())
        self.probe_s.append(self._now(pl_module) - end)
        self.probe_cpu.append(time.process_time() - end_cpu)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.profiler is not None:
            self.profiler.stop()
        assert isinstance(pl_module, TileRenderer)
        for _ in range(self.blend_repeats):
            start = self._now(pl_module)
            pl_module.blend()
            self.blends.append(self._now(pl_module) - start)


@dataclass
class FitResult:
    """Timings of one short render (seconds; per-step lists cover the timed steps only)."""

    num_tiles: int
    pattern: tuple[int, int]
    tiles_per_step: int
    steps_per_pass: int
    steps: list[float]  # batch start to next batch start, less the probe
    steps_cpu: list[float]  # the same in process CPU seconds
    in_steps: list[float]  # batch start to batch end (training_step and the batch hooks)
    probes: list[dict[str, float]]
    blends: list[float]
    cuda_peak_mb: float | None = None
    profiler: torch.profiler.profile | None = None

    @property
    def step_s(self) -> float:
        """Median seconds per step."""
        return median(self.steps)

    @property
    def blend_s(self) -> float:
        """Median seconds per blend."""
        return median(self.blends)

    def blend_share(self, blend_every: int) -> float:
        """A blend's time over that of the steps between two blends (``blend_every`` passes)."""
        if blend_every <= 0:
            return 0.0
        return self.blend_s / (blend_every * self.steps_per_pass * self.step_s)


def run_fit(
    model: FeatureModel,
    overrides: Sequence[str],
    warmup: int,
    timed: int,
    blend_repeats: int = 0,
    probe: Probe | None = None,
    profile: bool = False,
) -> FitResult:
    """A real render of ``warmup + timed + 1`` steps (no blends during it), timed per batch.

    Built as ``render.run.render`` builds one octave (same helpers, same Trainer), except that
    the already built ``model`` is reused. The extra step closes the last timed interval.
    """
    cfg = compose_config(
        [
            *overrides,
            "render.blend_every=0",
            "checkpoint.every_n_steps=0",
            f"trainer.max_steps={warmup + timed + 1}",
        ]
    )
    size = (int(cfg.tiling.base_size[0]), int(cfg.tiling.base_size[1]))
    tile = list(cfg.tiling.tile_size)
    objective = build(cfg.objective)
    objective.validate(model.layer_channels())
    tiling = make_tiling(cfg.tiling, size)
    # As the render resolves it: the default (null) or auto becomes a number.
    cfg.render.tiles_per_step = batching.tiles_per_step(
        cfg, model, objective, tiling.num_tiles(), world=1
    )
    param = build(cfg.param, tile_size=tuple(tile))
    check_memory(tiling, param, size, cfg, state_dtype(cfg.render.state_dtype))
    module = make_renderer(cfg, model, objective, tiling, param, seed=cfg.seed, init_canvas=None)
    timer = StepTimer(blend_repeats, probe, profile_from=warmup if profile else None)
    free_memory()
    with tempfile.TemporaryDirectory(prefix="bench_render_") as tmp:
        run_dir = Path(tmp)
        with quiet():
            trainer = make_trainer(
                cfg, run_dir, run_dir / "checkpoints", ProgressGif(cfg.render.gif_max_size)
            )
            trainer.callbacks.append(timer)
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            trainer.fit(module)
    cuda_peak = torch.cuda.max_memory_allocated() / MB if torch.cuda.is_available() else None
    if len(timer.starts) != warmup + timed + 1:
        raise RuntimeError(f"expected {warmup + timed + 1} batches, got {len(timer.starts)}")
    last = warmup + timed
    steps = [timer.starts[i + 1] - timer.starts[i] - timer.probe_s[i] for i in range(warmup, last)]
    batches = TileBatches(tiling.num_tiles(), cfg.render.tiles_per_step, cfg.seed)
    result = FitResult(
        num_tiles=tiling.num_tiles(),
        pattern=(tiling.tiling_pattern()[0], tiling.tiling_pattern()[1]),
        tiles_per_step=batches.tiles_per_step,
        steps_per_pass=len(batches),
        steps=steps,
        steps_cpu=[
            timer.starts_cpu[i + 1] - timer.starts_cpu[i] - timer.probe_cpu[i]
            for i in range(warmup, last)
        ],
        in_steps=[timer.ends[i] - timer.starts[i] for i in range(warmup, last)],
        probes=timer.probes[warmup:last],
        blends=timer.blends,
        cuda_peak_mb=cuda_peak,
        profiler=timer.profiler,
    )
    del module, trainer, timer
    free_memory()
    return result


# --- the same work without Lightning -------------------------------------------------------


@dataclass
class Parts:
    """What one step runs, built from the default config, on one device."""

    model: FeatureModel
    cfg: DictConfig
    device: torch.device

    def __post_init__(self) -> None:
        """Build the objective, parameterisation, transforms and optimiser factory."""
        self.objective = build(self.cfg.objective)
        self.layers = sorted(self.objective.layers)
        self.tile = (int(self.cfg.tiling.tile_size[0]), int(self.cfg.tiling.tile_size[1]))
        self.param = build(self.cfg.param, tile_size=self.tile)
        self.transforms = build(self.cfg.transforms)
        self.optimizer = build(self.cfg.optim)
        self.input_size = self.transforms.output_size(*self.tile)


#: Phases of the Lightning-free pipeline, in order.
PHASES = ("decode", "transforms", "model+objective", "backward", "optimiser")


def make_probe(parts: Parts, n: int) -> Probe:
    """Reference work for ``n`` tiles, timed: the bare model and the Lightning-free pipeline.

    ``bare``: ``model.capture`` + objective + backward to a ``[n, 3, *input_size]`` tensor (no
    decode, no transforms). Then one step of the whole pipeline on its own parameter and
    optimiser, phase by phase: decode, transforms, model + objective, backward, optimiser step.
    """
    images = torch.rand(n, 3, *parts.input_size, device=parts.device).requires_grad_(True)
    rows = parts.param.init(n, torch.Generator().manual_seed(0)).to(parts.device)
    param = torch.nn.Parameter(rows)
    optimizer = parts.optimizer([param])
    calls = 0

    def probe() -> dict[str, float]:
        nonlocal calls
        calls += 1
        marks = [time.perf_counter()]
        cpu = [time.process_time()]

        def mark() -> None:
            synchronize(parts.device)
            marks.append(time.perf_counter())

        images.grad = None
        score = parts.objective(parts.model.capture(images, parts.layers), images)
        (-score).backward()
        mark()
        cpu.append(time.process_time())
        pixels = parts.param.decode(param)
        mark()
        pixels = parts.transforms(pixels, step_generator(0, calls))
        mark()
        score = parts.objective(parts.model.capture(pixels, parts.layers), pixels)
        mark()
        optimizer.zero_grad()
        (-score).backward()
        mark()
        optimizer.step()
        mark()
        cpu.append(time.process_time())
        spans = [b - a for a, b in itertools.pairwise(marks)]
        return {
            **dict(zip(("bare", *PHASES), spans, strict=True)),
            "bare_cpu": cpu[1] - cpu[0],
            "pipeline_cpu": cpu[2] - cpu[1],
        }

    return probe
