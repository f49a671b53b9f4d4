"""Benchmark a render: framework overhead per step, blend cost, and scaling with the canvas.

    python scripts/bench_render.py [--quick] [--big] [--parts 1,2,3,4] [--threads N] [--profile]
                                   [--tiles-per-step 1,4,8] [--rss-overrides KEY=VALUE ...]
                                   [--sbs-size 1024] [--sbs-class 1] [--sbs-updates U]
                                   [--sbs-overrides KEY=VALUE ...] [--sbs-out DIR]

Everything is measured in this one run, on this machine, and printed as markdown tables, each
under a line naming the machine, the load average, torch's thread count and the device:

1. **Overhead per step.** Seconds per training step of a real render (``TileRenderer`` driven
   by the Trainer that ``render.run.make_trainer`` builds, loggers and progress bar included;
   default model, objective, parameterisation, transforms and optimiser) against the bare model
   forward + backward on a tensor of the transformed tile size (``model.capture`` + objective +
   backward to the images), for several ``tiles_per_step``. The canvas is 2x4 tiles of 224 so
   that every batch is full; blends are off (``render.blend_every=0``) and the first steps are
   warm-up. A step is the time between the starts of consecutive batches, so Lightning's work
   between batches counts. After every step the bare reference, and the same pipeline without
   Lightning or the tile store (decode, transforms, model, backward, Adam), run once inside the
   fit and are subtracted from that step: render and reference are measured side by side,
   under the same machine load. Overhead = step / bare - 1 (median of the pairs; also min/min
   and in process CPU time, which are steadier on a busy machine).
2. **Blend cost.** One ``TileRenderer.blend()`` against one step, per canvas size.
3. **Scaling.** Tiles, time for one pass over every tile (steps per pass x seconds per step +
   one blend), and the peak RSS of a fresh ``scripts/render.py ... trainer.max_steps=2``
   process per canvas size (``/usr/bin/time -v``, else psutil polling); with CUDA, peak CUDA
   memory of the in-process render with ``render.offload`` false and true.

4. **Side by side** (``--parts 4``; not in the default parts): this project's pyramid, its
   single-scale tiled render (``render.octaves=1``) and a whole-image render (one tile as
   large as the canvas, as Lucid and Lucent do) of one class on one canvas (``--sbs-size``,
   ``--sbs-class``, ``--sbs-updates``), each a fresh ``scripts/render.py`` process: wall time,
   peak RSS, peak CUDA memory, the share of windows classified as the class at every level,
   the finest-octave detail and the seam ratio (``render.quality``).

Numbers are reported, never asserted. ``--profile`` adds torch.profiler's top operators for
one ``tiles_per_step``. On a shared CPU, competing processes make multi-threaded timings swing
widely (``--threads 1`` gives steadier ratios).
"""

from __future__ import annotations

import os
import sys

# scripts/render.py is named like the package: import the package, not that file.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from render.budget import bytes_needed, check_memory  # noqa: E402
from render.config import build, register_configs  # noqa: E402
from render.errors import UserError  # noqa: E402
from render.models import FeatureModel  # noqa: E402
from render.outputs import ProgressGif  # noqa: E402
from render.quality import fine_detail, recognition_by_level, seam_ratio, window_levels  # noqa: E402
from render.renderer import TileRenderer  # noqa: E402
from render.run import make_renderer, make_tiling, make_trainer, state_dtype  # noqa: E402
from render.schedule import TileBatches, step_generator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
RENDER_SCRIPT = ROOT / "scripts" / "render.py"
MB = 2**20
#: Overhead target for tiles_per_step >= 4 (reported, not asserted).
OVERHEAD_TARGET = 0.15
#: A canvas of 2x4 tiles of 224 with 25% overlap: every tiles_per_step in (1, 4, 8) fills
#: every batch (the default 3x3 canvas would leave a 1-tile batch per epoch for 4 and 8).
OVERHEAD_CANVAS = (392, 728)


# --- configuration and timing helpers ------------------------------------------------------


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The render config of ``configs/render.yaml`` with Hydra ``overrides`` applied."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("render", overrides=list(overrides))


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that wall-clock times are the work's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median(values: Sequence[float]) -> float:
    """Median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def machine_line() -> str:
    """One line naming the machine, torch, its thread count and the device used."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    device = (
        f"CUDA {torch.cuda.get_device_name()}"
        if torch.cuda.is_available()
        else "CPU only (no CUDA)"
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"machine: {cpu}, {os.cpu_count()} logical cores (load average {load}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM; torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads; pytorch-lightning {pl.__version__}; {device}"
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are printed with 4 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Swallow stdout/stderr (progress bar, warnings) and Lightning's info; replay on error."""
    captured = io.StringIO()
    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(captured),
            contextlib.redirect_stdout(captured),
        ):
            warnings.simplefilter("ignore")
            yield captured
    except BaseException:
        sys.stderr.write(captured.getvalue()[-4000:])
        raise
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# --- a real render, timed ------------------------------------------------------------------

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


def free_memory() -> None:
    """Collect garbage and return cached CUDA blocks, so that peaks are per measurement."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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


# --- peak RSS of a fresh render process ----------------------------------------------------


def parse_time_v(text: str) -> int | None:
    """Peak RSS in bytes from GNU ``/usr/bin/time -v`` output, or None if absent."""
    found = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", text)
    return int(found.group(1)) * 1024 if found else None


def peak_rss_of(command: list[str], timeout_s: float) -> tuple[int | None, float, str]:
    """Run ``command``; return (peak RSS bytes of it and its children, seconds, error or "")."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    start = time.perf_counter()
    if gnu_time is not None:
        with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
            try:
                done = subprocess.run(
                    [gnu_time, "-v", "-o", report.name, *command],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return None, time.perf_counter() - start, f"timed out after {timeout_s:.0f} s"
            peak = parse_time_v(Path(report.name).read_text())
        if peak is not None:
            error = "" if done.returncode == 0 else last_line(done.stderr, done.returncode)
            return peak, time.perf_counter() - start, error
    # Fallback: poll the process tree's RSS (may miss a short spike between polls).
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        if time.perf_counter() - start > timeout_s:
            process.kill()
            break
        with contextlib.suppress(psutil.Error):
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        time.sleep(0.02)
    stderr = process.stderr.read() if process.stderr else ""
    code = process.wait()
    error = "" if code == 0 else last_line(stderr, code)
    return peak or None, time.perf_counter() - start, error


def last_line(stderr: str, code: int) -> str:
    """The last non-empty line of a failed process's stderr, with its exit status."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    return f"exit {code}: {lines[-1][:120] if lines else ''}"


def render_rss(
    size: int, timeout_s: float, extra: Sequence[str] = ()
) -> tuple[int | None, float, str]:
    """Peak RSS of ``scripts/render.py`` on a ``size`` x ``size`` canvas for 2 steps.

    ``extra`` Hydra overrides are appended (e.g. ``render.blend_every=1`` to include a blend).

    The child inherits this process's environment; ``--threads`` reaches it as
    ``OMP_NUM_THREADS`` (set in :func:`main`).
    """
    with tempfile.TemporaryDirectory(prefix="bench_render_rss_") as tmp:
        command = [
            sys.executable,
            str(RENDER_SCRIPT),
            f"tiling.base_size=[{size},{size}]",
            "render.octaves=1",
            "trainer.max_steps=2",
            f"hydra.run.dir={tmp}",
            *extra,
        ]
        return peak_rss_of(command, timeout_s)


# --- the three parts -----------------------------------------------------------------------


def part_overhead(model: FeatureModel, args: argparse.Namespace) -> None:
    """Part 1: real render step vs bare model forward+backward, per tiles_per_step."""
    canvas = OVERHEAD_CANVAS
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parts = Parts(model, compose_config([]), device)
    rows, breakdown = [], []
    for n in args.tiles_per_step:
        overrides = [f"tiling.base_size=[{canvas[0]},{canvas[1]}]", f"render.tiles_per_step={n}"]
        fit = run_fit(model, overrides, args.warmup, args.timed, probe=make_probe(parts, n))
        bare = [probe["bare"] for probe in fit.probes]
        pipeline = [sum(probe[phase] for phase in PHASES) for probe in fit.probes]
        paired = median([step / b - 1 for step, b in zip(fit.steps, bare, strict=True)])
        at_best = min(fit.steps) / min(bare) - 1
        cpu_pairs = zip(fit.steps_cpu, fit.probes, strict=True)
        cpu = median([step / probe["bare_cpu"] - 1 for step, probe in cpu_pairs])
        verdict = "" if n < 4 else ("yes" if paired < OVERHEAD_TARGET else "NO")
        rows.append(
            [
                n,
                fit.step_s,
                median(bare),
                fit.step_s / n,
                median(bare) / n,
                f"{100 * paired:.1f}%",
                f"{100 * at_best:.1f}%",
                f"{100 * cpu:.1f}%",
                verdict,
            ]
        )
        framework = [step - pipe for step, pipe in zip(fit.steps, pipeline, strict=True)]
        between = [step - inner for step, inner in zip(fit.steps, fit.in_steps, strict=True)]
        breakdown.append(
            [
                n,
                *(median([probe[phase] for probe in fit.probes]) for phase in PHASES),
                median(pipeline),
                fit.step_s,
                median(framework),
                median(between),
                f"{100 * median([p / b - 1 for p, b in zip(pipeline, bare, strict=True)]):.1f}%",
                f"{100 * median([f / b for f, b in zip(framework, bare, strict=True)]):.1f}%",
            ]
        )
    print(
        f"\n### 1. Framework overhead per step (canvas {canvas[0]}x{canvas[1]} = 8 tiles of "
        f"{parts.tile[0]}, model input {parts.input_size[0]}x{parts.input_size[1]}; "
        f"{args.timed} timed steps after {args.warmup} warm-up, each followed by the bare "
        f"reference; medians)\n"
    )
    print(machine_line() + "\n")
    print(
        markdown_table(
            [
                "tiles/step",
                "render step (s)",
                "bare fwd+bwd (s)",
                "step s/tile",
                "bare s/tile",
                "overhead (median of step/bare - 1)",
                "overhead (min/min - 1)",
                "overhead (CPU time)",
                f"< {OVERHEAD_TARGET:.0%}?",
            ],
            rows,
        )
    )
    print(
        "\nWhere a step goes (seconds, medians): the same work without Lightning or the tile "
        "store, phase by phase; framework = render step - pipeline; between batches = the "
        "part of a step outside `on_train_batch_start..end` (logging, progress bar, loader):\n"
    )
    print(
        markdown_table(
            [
                "tiles/step",
                *PHASES,
                "pipeline",
                "render step",
                "framework",
                "between batches",
                "pipeline vs bare",
                "framework / bare",
            ],
            breakdown,
        )
    )
    if args.profile:
        n = args.profile_tiles
        overrides = [f"tiling.base_size=[{canvas[0]},{canvas[1]}]", f"render.tiles_per_step={n}"]
        fit = run_fit(model, overrides, args.warmup, args.timed, profile=True)
        if fit.profiler is not None:
            print(f"\ntorch.profiler, {args.timed} render steps of {n} tiles, top operators:\n")
            print("```")
            print(fit.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
            print("```")


def fits_by_size(
    model: FeatureModel, sizes: Sequence[int], args: argparse.Namespace, offload: bool = False
) -> dict[int, FitResult | str]:
    """One short real render per square canvas size (default tiles_per_step), blend timed."""
    results: dict[int, FitResult | str] = {}
    for size in sizes:
        try:
            results[size] = run_fit(
                model,
                [f"tiling.base_size=[{size},{size}]", f"render.offload={str(offload).lower()}"],
                args.scale_warmup,
                args.scale_timed,
                blend_repeats=args.blend_repeats if size <= 1024 else 1,
            )
        except (UserError, torch.cuda.OutOfMemoryError, MemoryError) as error:
            results[size] = f"{type(error).__name__}: {str(error)[:100]}"
        free_memory()
    return results


def part_blend(fits: dict[int, FitResult | str], sizes: Sequence[int], blend_every: int) -> None:
    """Part 2: one blend against one step."""
    rows = []
    for size in sizes:
        fit = fits[size]
        if isinstance(fit, str):
            rows.append([f"{size}x{size}", fit, "", "", "", ""])
            continue
        rows.append(
            [
                f"{size}x{size}",
                f"{fit.num_tiles} ({fit.pattern[0]}x{fit.pattern[1]})",
                fit.step_s,
                fit.blend_s,
                f"{fit.blend_s / fit.step_s:.2f}",
                f"{100 * fit.blend_s / (blend_every * fit.step_s):.1f}%",
            ]
        )
    tps = next((f.tiles_per_step for f in fits.values() if not isinstance(f, str)), "?")
    print(f"\n### 2. Blend cost (tiles of 224, overlap 0.25, {tps} tiles/step)\n")
    print(machine_line() + "\n")
    print(
        markdown_table(
            [
                "canvas",
                "tiles",
                "step (s)",
                "blend() (s)",
                "blend / step",
                f"blend share at blend_every={blend_every}",
            ],
            rows,
        )
    )


def part_scaling(
    model: FeatureModel,
    fits: dict[int, FitResult | str],
    sizes: Sequence[int],
    args: argparse.Namespace,
) -> None:
    """Part 3: tiles, time per pass, peak RSS of a fresh render, CUDA peaks with/without offload."""
    cfg = compose_config([])
    tile = (int(cfg.tiling.tile_size[0]), int(cfg.tiling.tile_size[1]))
    param = build(cfg.param, tile_size=tile)
    blend_every = int(cfg.render.blend_every)
    offloaded = fits_by_size(model, sizes, args, offload=True) if torch.cuda.is_available() else {}
    rows = []
    first: tuple[int, int] | None = None  # (pixels, RSS) of the smallest canvas measured
    for size in sizes:
        fit = fits[size]
        tiling = make_tiling(cfg.tiling, (size, size))
        states = state_dtype(cfg.render.state_dtype)
        estimate = bytes_needed(tiling, param, (size, size), states) / MB
        rss, seconds, error = render_rss(size, args.rss_timeout, args.rss_overrides)
        rss_cells: list[object] = ["n/a", "n/a", "n/a"]
        if rss is not None:
            # The marginal figure leaves out what every render holds (torch, the model, ...).
            marginal = "" if first is None else f"{(rss - first[1]) / (size**2 - first[0]):.0f}"
            rss_cells = [rss / MB, f"{rss / size**2:.0f}", marginal]
            first = first or (size**2, rss)
        row: list[object] = [f"{size}x{size}", tiling.num_tiles()]
        if isinstance(fit, str):
            steps = len(TileBatches(tiling.num_tiles(), cfg.render.tiles_per_step, 0))
            row += [steps, fit, "", "", ""]
        else:
            pass_s = fit.steps_per_pass * fit.step_s + fit.blend_s
            share = fit.blend_s / (blend_every * fit.step_s) if blend_every > 0 else 0.0
            row += [fit.steps_per_pass, fit.step_s, fit.blend_s, pass_s, f"{100 * share:.0f}%"]
        row += [*rss_cells, estimate, f"{seconds:.0f}" + (f" ({error})" if error else "")]
        if torch.cuda.is_available():
            for result in (fit, offloaded.get(size, "n/a")):
                peak = None if isinstance(result, str) else result.cuda_peak_mb
                row.append(result if peak is None else peak)
        rows.append(row)
    headers = [
        "canvas",
        "tiles",
        "steps/pass",
        "step (s)",
        "blend (s)",
        "s/pass (steps x step + blend)",
        f"blend / (blend_every={blend_every} x step)",
        "peak RSS (MB)",
        "RSS bytes/px",
        "marginal bytes/px (vs first row)",
        "budget.bytes_needed (MB)",
        "render.py wall (s)",
    ]
    if torch.cuda.is_available():
        headers += ["CUDA peak MB offload=false", "CUDA peak MB offload=true"]
    print(
        f"\n### 3. Scaling with the canvas (tiles {tile[0]}, overlap 0.25, "
        f"{cfg.render.tiles_per_step} tiles/step; RSS of a fresh `scripts/render.py "
        f"trainer.max_steps=2{''.join(' ' + o for o in args.rss_overrides)}`)\n"
    )
    print(machine_line() + "\n")
    print(markdown_table(headers, rows))


# --- part 4: side by side ------------------------------------------------------------------


def side_by_side_variants(size: int, updates: float) -> dict[str, list[str]]:
    """The three renders of part 4 as Hydra overrides, on one canvas, model and objective.

    The whole-image render (one tile as large as the canvas, as Lucid and Lucent render) gets
    as many pixel updates as the single-scale tiled render: its updates per tile are the tiled
    render's, times the tiles' coverage of the canvas (overlaps count twice there).
    """
    cfg = compose_config([f"tiling.base_size=[{size},{size}]"])
    tiling = make_tiling(cfg.tiling, (size, size))
    tile_h, tile_w = (int(t) for t in cfg.tiling.tile_size)
    coverage = tiling.num_tiles() * tile_h * tile_w / size**2
    return {
        "pyramid (default)": [f"render.updates_per_tile={updates}"],
        "single-scale tiled": ["render.octaves=1", f"render.updates_per_tile={updates}"],
        "whole image (one tile)": [
            f"tiling.tile_size=[{size},{size}]",
            "render.octaves=1",
            "render.tiles_per_step=1",
            f"render.updates_per_tile={updates * coverage:.1f}",
        ],
    }


def load_png(path: Path) -> torch.Tensor:
    """A PNG as ``[1, 3, H, W]`` floats in [0, 1]."""
    import torchvision.transforms.v2.functional as TF
    from PIL import Image

    with Image.open(path) as picture:
        image = TF.to_image(picture.convert("RGB"))
    return TF.to_dtype(image, torch.float32, scale=True)[None].as_subclass(torch.Tensor)


def judge_png(
    model: FeatureModel, path: Path, class_index: int, tiling: Any, tile: Sequence[int]
) -> dict[str, Any]:
    """The design's measures of one render: recognition per level, fine detail, seams."""
    canvas = load_png(path)
    return {
        "levels": recognition_by_level(model, canvas, class_index, tile),
        "detail": fine_detail(canvas),
        "seams": seam_ratio(canvas, tiling),
    }


def part_side_by_side(model: FeatureModel, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Part 4: pyramid vs single-scale tiled vs whole-image render of one class, in one run.

    Each render is a fresh ``scripts/render.py`` process (wall time and peak RSS from
    ``/usr/bin/time -v``; peak CUDA memory from its log). Each PNG is then judged: the share of
    windows classified as the class at every level (whole image, 2x2, 4x4, ... down to about
    one tile), the finest-octave detail (RMS of what a 2x down-and-up resample removes) and
    the seam ratio on the default tile grid (mean step at tile edges / mean step, 1: none).
    """
    size, class_index = args.sbs_size, args.sbs_class
    cfg = compose_config([f"tiling.base_size=[{size},{size}]"])
    tile = [int(t) for t in cfg.tiling.tile_size]
    grid = make_tiling(cfg.tiling, (size, size))
    variants = side_by_side_variants(size, args.sbs_updates)
    results = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_render_sbs_") as tmp:
        for name, extra in variants.items():
            run_dir = Path(tmp) / re.sub(r"[^a-z]+", "_", name.lower()).strip("_")
            command = [
                sys.executable,
                str(RENDER_SCRIPT),
                "objective=class_logit",
                f"objective.class_index={class_index}",
                f"tiling.base_size=[{size},{size}]",
                "trainer.enable_progress_bar=false",
                *args.sbs_overrides,
                *extra,
                f"hydra.run.dir={run_dir}",
            ]
            rss, seconds, error = peak_rss_of(command, args.rss_timeout)
            result: dict[str, Any] = {"name": name, "overrides": extra, "seconds": seconds}
            result["rss_mb"] = rss / MB if rss else None
            log_text = "".join(p.read_text() for p in run_dir.glob("*.log"))
            found = re.search(r"peak CUDA memory (\d+) MB", log_text)
            result["cuda_mb"] = float(found.group(1)) if found else None
            png = run_dir / "render.png"
            if error or not png.is_file():
                result["error"] = error or "no render.png"
            else:
                result.update(judge_png(model, png, class_index, grid, tile))
                if args.sbs_out:
                    args.sbs_out.mkdir(parents=True, exist_ok=True)
                    shutil.copy(png, args.sbs_out / f"{run_dir.name}.png")
            results.append(result)
            levels = result.get("levels", {})
            rows.append(
                [
                    name,
                    f"{seconds:.0f}",
                    result["rss_mb"] or "n/a",
                    result["cuda_mb"] or "n/a",
                    *(
                        f"{100 * levels[k]:.0f}%" if k in levels else "n/a"
                        for k in window_levels((size, size), tile)
                    ),
                    result.get("detail", result.get("error", "n/a")),
                    result.get("seams", "n/a"),
                ]
            )
    levels = window_levels((size, size), tile)
    print(
        f"\n### 4. Side by side: class {class_index} on a {size}x{size} canvas, "
        f"{args.sbs_updates:g} updates per tile (extra overrides: "
        f"{' '.join(args.sbs_overrides) or 'none'})\n"
    )
    print(machine_line() + "\n")
    headers = [
        "render",
        "wall (s)",
        "peak RSS (MB)",
        "peak CUDA (MB)",
        *(f"recognised, {k}x{k} windows of {size // k}" for k in levels),
        "finest-octave detail (RMS)",
        "seam ratio",
    ]
    print(markdown_table(headers, rows))
    return results


def positive_ints(text: str) -> list[int]:
    """Parse "1,4,8" into [1, 4, 8]."""
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,4,8, got {text!r}")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks repeats and canvas sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, canvases up to 1024")
    parser.add_argument("--big", action="store_true", help="add an 8192x8192 canvas to part 3")
    parser.add_argument(
        "--parts", type=positive_ints, default=[1, 2, 3], help="e.g. 1,3; 4: side by side"
    )
    parser.add_argument("--sbs-size", type=int, default=1024, help="part 4: canvas side")
    parser.add_argument("--sbs-class", type=int, default=1, help="part 4: class (1: goldfish)")
    parser.add_argument(
        "--sbs-updates", type=float, default=None, help="part 4: updates per tile (config's)"
    )
    parser.add_argument(
        "--sbs-overrides", nargs="*", default=[], help="part 4: Hydra overrides for every render"
    )
    parser.add_argument("--sbs-out", type=Path, default=None, help="part 4: copy the PNGs here")
    parser.add_argument("--tiles-per-step", type=positive_ints, default=[1, 4, 8])
    parser.add_argument("--profile", action="store_true", help="torch.profiler for part 1")
    parser.add_argument("--profile-tiles", type=int, default=4, help="tiles/step to profile")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--rss-timeout", type=float, default=900.0, help="seconds per render")
    parser.add_argument(
        "--rss-overrides",
        nargs="*",
        default=[],
        help="extra Hydra overrides for the RSS renders, e.g. render.blend_every=1",
    )
    args = parser.parse_args(argv)
    args.warmup, args.timed = (1, 2) if args.quick else (2, 8)
    args.scale_warmup, args.scale_timed = (1, 2) if args.quick else (1, 3)
    args.blend_repeats = 1 if args.quick else 3
    args.scale_sizes = [512, 1024] if args.quick else [512, 1024, 2048, 4096]
    if args.big:
        args.scale_sizes.append(8192)
    args.blend_sizes = [448, 1024]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the selected parts and print their tables."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the render.py children
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if not torch.cuda.is_available() and load > 0.5 * cores:
        threads = torch.get_num_threads()
        print(
            f"warning: load average {load:.1f} on {cores} cores: other processes compete for the "
            f"CPU and timings will be noisy"
            + (
                f" (with {threads} threads they swing widely: rerun on an idle machine or with "
                f"--threads 1 for steadier ratios)"
                if threads > 1
                else ""
            )
        )
    register_configs()
    started = time.perf_counter()
    model = build(compose_config([]).model)
    if 1 in args.parts:
        part_overhead(model, args)
    sizes = sorted(
        set(
            (args.blend_sizes if 2 in args.parts else [])
            + (args.scale_sizes if 3 in args.parts else [])
        )
    )
    fits = fits_by_size(model, sizes, args) if sizes else {}
    if 2 in args.parts:
        part_blend(fits, args.blend_sizes, int(compose_config([]).render.blend_every))
    if 3 in args.parts:
        part_scaling(model, fits, args.scale_sizes, args)
    if 4 in args.parts:
        if args.sbs_updates is None:
            args.sbs_updates = float(compose_config([]).render.updates_per_tile)
        part_side_by_side(model, args)
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
