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
5. **Compiled model** (``--parts 5``; not in the default parts): the model's forward +
   backward eager against ``torch.compile`` (inductor) and CUDA graphs, per ``tiles_per_step``
   (``scripts/bench/compiled.py``).

Numbers are reported, never asserted. ``--profile`` adds torch.profiler's top operators for
one ``tiles_per_step``. On a shared CPU, competing processes make multi-threaded timings swing
widely (``--threads 1`` gives steadier ratios).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# scripts/render.py is named like the package: drop this folder and import the package (and
# the parts, scripts.bench) from ROOT.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "scripts"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import torch  # noqa: E402

from render.budget import bytes_needed  # noqa: E402
from render.config import build, compose_config, register_configs  # noqa: E402
from render.run import make_tiling, state_dtype  # noqa: E402
from render.schedule import TileBatches  # noqa: E402
from scripts.bench.common import free_memory, markdown_table, median  # noqa: E402
from scripts.bench.compiled import COMPILE_HEADERS, compile_row, part_compile  # noqa: E402
from scripts.bench.fit import PHASES, Parts, make_probe, run_fit  # noqa: E402
from scripts.bench.overhead import part_overhead  # noqa: E402
from scripts.bench.rss import parse_time_v, peak_rss_of  # noqa: E402
from scripts.bench.scaling import fits_by_size, part_blend, part_scaling  # noqa: E402
from scripts.bench.side_by_side import part_side_by_side, side_by_side_variants  # noqa: E402

# What tests/test_bench_render.py and scripts/gpu_check.py use of this module.
__all__ = [
    "COMPILE_HEADERS",
    "PHASES",
    "Parts",
    "TileBatches",
    "build",
    "bytes_needed",
    "compile_row",
    "compose_config",
    "free_memory",
    "main",
    "make_probe",
    "make_tiling",
    "markdown_table",
    "median",
    "parse_args",
    "parse_time_v",
    "peak_rss_of",
    "register_configs",
    "run_fit",
    "side_by_side_variants",
    "state_dtype",
]


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
        "--parts",
        type=positive_ints,
        default=[1, 2, 3],
        help="e.g. 1,3; 4: side by side; 5: compiled model",
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
        help="extra Hydra overrides for the RSS renders, e.g. render.offload=true",
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
    if 5 in args.parts:
        part_compile(model, args)
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
