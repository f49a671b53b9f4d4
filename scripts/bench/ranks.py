"""Scaling with the canvas and the number of gloo processes: time, memory per rank, outputs.

For each canvas side and number of processes, one render of one octave: one pass over the tiles
and a blend (``render.updates_per_tile=1 render.blend_every=1``), or only ``--steps`` steps of
it where a pass has more (its seconds per pass are then those steps' scaled to a pass), then
the outputs the canvas's size chooses. Each render runs ``scripts.bench.outputs`` in a fresh
process: seconds per pass from the seconds between steps; peak resident memory of the largest
process, and the canvas's share of it (above a 448x448 render's with the same processes); the
writing's time and its peak above the render's own peak; the size of each output. The pictures
of full passes with more processes are compared with one process's (PSNR).

    python -m scripts.bench.ranks --sizes 1024 4096 8192 16384 --ranks 1 2 [OVERRIDES...]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from render.batching import CPU_TILES_PER_STEP
from render.config import compose_config
from render.run import make_tiling
from scripts.bench.common import MB, ROOT, machine_line, markdown_table
from scripts.bench.outputs import FIGURES
from scripts.bench.rss import peak_rss_of

BASELINE = 448
# Large canvases: PNG and GIF as small as the render allows, so that memory is the canvas's.
Image.MAX_IMAGE_PIXELS = None


def one_pass(
    size: int, ranks: int, run_dir: Path, timeout_s: float, extra: list[str], steps: int | None
) -> tuple[int | None, float, str]:
    """Peak RSS (bytes, the largest process), seconds and error of one pass (or ``steps``
    steps of it), a blend and the outputs; the writing rank's figures land in ``run_dir``."""
    command = [
        sys.executable,
        "-m",
        "scripts.bench.outputs",
        str(run_dir),
        f"tiling.base_size=[{size},{size}]",
        "render.octaves=1",
        "render.updates_per_tile=1",
        "render.blend_every=1",
        "trainer.accelerator=cpu",
        f"trainer.devices={ranks}",
        *(["trainer.strategy=ddp"] if ranks > 1 else []),
        *([f"trainer.max_steps={steps}"] if steps else []),
        *extra,
    ]
    return peak_rss_of(command, timeout_s, cwd=ROOT)


def steps_per_pass(size: int, ranks: int, extra: list[str]) -> int:
    """Steps of one pass over a rank's tiles of a ``size`` canvas (the CPU's tiles per step)."""
    cfg = compose_config([f"tiling.base_size=[{size},{size}]", *extra])
    tiles = math.ceil(make_tiling(cfg.tiling, (size, size)).num_tiles() / ranks)
    per_step = cfg.render.tiles_per_step or CPU_TILES_PER_STEP  # null, on the CPU
    return math.ceil(tiles / min(per_step, tiles))


def psnr(a: Path, b: Path) -> float:
    """PSNR (dB) of two 8-bit RGB images."""
    with Image.open(a) as x, Image.open(b) as y:
        diff = np.asarray(x.convert("RGB"), np.float64) - np.asarray(y.convert("RGB"), np.float64)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096], help="canvas sides")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--steps", type=int, default=120, help="at most this many steps of a pass (0: all)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per render")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    parser.add_argument(
        "overrides", nargs="*", help="more overrides for every render (e.g. a cheaper layer)"
    )
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_ranks_"))
    base = {
        n: one_pass(BASELINE, n, root / f"base{n}", args.timeout, args.overrides, None)[0]
        for n in args.ranks
    }
    rows = []
    for size in args.sizes:
        first = None
        for ranks in args.ranks:
            run_dir = root / f"size{size}-ranks{ranks}"
            full = steps_per_pass(size, ranks, args.overrides)
            steps = args.steps if 0 < args.steps < full else None
            peak, _, error = one_pass(size, ranks, run_dir, args.timeout, args.overrides, steps)
            found = run_dir / FIGURES
            figures = json.loads(found.read_text()) if found.exists() else {}
            canvas = None if peak is None or base[ranks] is None else (peak - base[ranks]) / MB
            first = first or (canvas, run_dir, steps)
            same = ""
            if ranks != args.ranks[0] and not error and steps is None and first[2] is None:
                same = f"{psnr(first[1] / 'render.png', run_dir / 'render.png'):.1f}"
            between = figures.get("step_times", [])
            per_pass = statistics.median(between) * full if between else math.nan
            sizes = figures.get("sizes_mb", {})
            rows.append(
                [
                    f"{size}x{size}",
                    ranks,
                    f"{per_pass:.0f}" + (f" (from {steps} steps)" if steps else ""),
                    "n/a" if peak is None else f"{peak / MB:.0f}",
                    "n/a" if canvas is None else f"{canvas:.0f}",
                    "" if canvas is None or not first[0] else f"{canvas / first[0]:.0%}",
                    figures.get("write_s", "n/a"),
                    figures.get("write_peak_above_render_mb", "n/a"),
                    " / ".join(
                        str(sizes.get(name, "-"))
                        for name in ("render.png", "render.tif", "render_files")
                    ),
                    same + (f" ({error})" if error else ""),
                ]
            )
    print(machine_line() + "\n")
    headers = [
        "canvas",
        "processes",
        "s per pass",
        "peak RSS, largest process (MB)",
        f"canvas per process (MB, above {BASELINE}x{BASELINE})",
        f"of {args.ranks[0]} process(es)",
        "writing (s)",
        "writing's peak above the render's (MB)",
        "PNG / TIFF / deep zoom (MB)",
        f"PSNR vs {args.ranks[0]} process(es) (dB)",
    ]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
