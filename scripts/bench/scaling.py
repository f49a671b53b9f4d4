"""Parts 2 and 3: one blend against one step, and time and memory as the canvas grows."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from render.budget import bytes_needed
from render.config import build, compose_config
from render.errors import UserError
from render.models import FeatureModel
from render.run import make_tiling, state_dtype
from scripts.bench.common import MB, free_memory, machine_line, markdown_table
from scripts.bench.fit import FitResult, run_fit
from scripts.bench.rss import render_rss


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


def tiles_per_step(fits: dict[int, FitResult | str]) -> int | str:
    """The (default) tiles per step the fits ran with, as the render resolved it."""
    return next((f.tiles_per_step for f in fits.values() if not isinstance(f, str)), "?")


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
                f"{100 * fit.blend_share(blend_every):.1f}%",
            ]
        )
    print(f"\n### 2. Blend cost (tiles of 224, overlap 0.25, {tiles_per_step(fits)} tiles/step)\n")
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
            row += ["", fit, "", "", ""]
        else:
            pass_s = fit.steps_per_pass * fit.step_s + fit.blend_s
            share = fit.blend_share(blend_every)
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
        f"blend / (blend_every={blend_every} passes x steps/pass x step)",
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
        f"{tiles_per_step(fits)} tiles/step; RSS of a fresh `scripts/render.py "
        f"trainer.max_steps=2{''.join(' ' + o for o in args.rss_overrides)}`)\n"
    )
    print(machine_line() + "\n")
    print(markdown_table(headers, rows))
