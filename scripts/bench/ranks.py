"""Memory per rank of a canvas sharded over gloo processes, and whether the picture changes.

One pass over the tiles and a blend (``render.updates_per_tile=1 render.blend_every=1``, one
octave) at a large canvas and at 448x448, for each number of processes; the canvas's memory
per rank is the peak resident memory of the largest process above the 448 render's with the
same number of processes. The pictures of more processes are compared with one process's.

    python -m scripts.bench.ranks --size 4096 --ranks 1 2 [OVERRIDES...]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from scripts.bench.common import MB, RENDER_SCRIPT, machine_line, markdown_table
from scripts.bench.rss import peak_rss_of

BASELINE = 448
# Large canvases: PNG and GIF as small as the render allows, so that memory is the canvas's.
Image.MAX_IMAGE_PIXELS = None


def one_pass(
    size: int, ranks: int, run_dir: Path, timeout_s: float, extra: list[str]
) -> tuple[int | None, float, str]:
    """Peak RSS (bytes, the largest process), seconds and error of one pass and a blend."""
    command = [
        sys.executable,
        str(RENDER_SCRIPT),
        f"tiling.base_size=[{size},{size}]",
        "render.octaves=1",
        "render.updates_per_tile=1",
        "render.blend_every=1",
        "trainer.accelerator=cpu",
        f"trainer.devices={ranks}",
        f"hydra.run.dir={run_dir}",
        *(["trainer.strategy=ddp"] if ranks > 1 else []),
        *extra,
    ]
    return peak_rss_of(command, timeout_s)


def psnr(a: Path, b: Path) -> float:
    """PSNR (dB) of two 8-bit RGB images."""
    with Image.open(a) as x, Image.open(b) as y:
        diff = np.asarray(x.convert("RGB"), np.float64) - np.asarray(y.convert("RGB"), np.float64)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="canvas side (square)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per render")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    parser.add_argument(
        "overrides", nargs="*", help="more overrides for every render (e.g. a cheaper layer)"
    )
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_ranks_"))
    rows, first = [], None
    for ranks in args.ranks:
        base_dir = root / f"base{ranks}"
        base, _, error = one_pass(BASELINE, ranks, base_dir, args.timeout, args.overrides)
        run_dir = root / f"size{args.size}-ranks{ranks}"
        peak, seconds, error = one_pass(args.size, ranks, run_dir, args.timeout, args.overrides)
        canvas = None if peak is None or base is None else (peak - base) / MB
        first = first or (canvas, run_dir)
        ratio = "" if canvas is None or not first[0] else f"{canvas / first[0]:.0%}"
        same = (
            f"{psnr(first[1] / 'render.png', run_dir / 'render.png'):.1f}"
            if ranks != args.ranks[0] and not error
            else ""
        )
        rows.append(
            [
                ranks,
                f"{args.size}x{args.size}",
                "n/a" if peak is None else f"{peak / MB:.0f}",
                "n/a" if base is None else f"{base / MB:.0f}",
                "n/a" if canvas is None else f"{canvas:.0f}",
                ratio,
                same,
                f"{seconds:.0f}" + (f" ({error})" if error else ""),
            ]
        )
    print(machine_line() + "\n")
    headers = [
        "processes",
        "canvas",
        "peak RSS, largest process (MB)",
        f"same at {BASELINE}x{BASELINE} (MB)",
        "canvas per process (MB)",
        f"of {args.ranks[0]} process(es)",
        f"PSNR vs {args.ranks[0]} process(es) (dB)",
        "wall (s)",
    ]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
