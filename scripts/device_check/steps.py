"""Section 3: a real render's step against the bare model forward+backward on the same batch,
per tiles per step, in float32 and under bf16 autocast."""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable
from typing import Any

from scripts.device_check.budget import Clock
from scripts.device_check.context import Context, run_case
from scripts.device_check.report import Section

PRECISIONS = {"fp32": "32-true", "bf16 autocast": "bf16-mixed"}


def tile_geometry(ctx: Context) -> tuple[int, int]:
    """(tile side, stride in pixels) of the configured square tiles."""
    cfg = ctx.config()
    tile = int(cfg.tiling.tile_size[0])
    overlap = cfg.tiling.tile_overlap[0]
    overlap_px = round(tile * overlap) if isinstance(overlap, float) else int(overlap)
    return tile, tile - overlap_px


def grid_canvas(ctx: Context, n: int) -> tuple[int, int]:
    """A canvas of exactly ``n`` tiles in a near-square grid: every batch of ``n`` is full."""
    rows = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    tile, stride = tile_geometry(ctx)
    return tile + (rows - 1) * stride, tile + (n // rows - 1) * stride


def with_autocast(probe: Callable[[], dict[str, float]], device: Any) -> Callable[[], dict]:
    """The bare-model probe under bf16 autocast, as Lightning's bf16-mixed runs the step."""
    import torch

    def probe_bf16() -> dict[str, float]:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return probe()

    return probe_bf16


def step_case(ctx: Context, precision: str, n: int) -> list[object]:
    """One timed render at ``n`` tiles per step with the bare model run between its steps."""
    bench, plan = ctx.need_bench(), ctx.plan
    h, w = grid_canvas(ctx, n)
    overrides = [
        *plan.overrides,
        f"tiling.base_size=[{h},{w}]",
        f"render.tiles_per_step={n}",
        f"trainer.precision={PRECISIONS[precision]}",
    ]
    parts = bench.Parts(ctx.model(), ctx.config(), ctx.device())
    probe = bench.make_probe(parts, n)
    if precision != "fp32":
        probe = with_autocast(probe, ctx.device())
    fit = bench.run_fit(ctx.model(), overrides, plan.step_warmup, plan.step_timed, probe=probe)
    bare = [p["bare"] for p in fit.probes]
    ratio = statistics.median(s / b for s, b in zip(fit.steps, bare, strict=True))
    ctx.step_seconds[(precision, n)] = fit.step_s
    peak = fit.cuda_peak_mb if fit.cuda_peak_mb is not None else "n/a (no CUDA)"
    return [
        f"{h}x{w}",
        fit.num_tiles,
        fit.step_s,
        bench.median(bare),
        ratio,
        1000 * fit.step_s / n,
        peak,
    ]


def section_steps(ctx: Context, section: Section, clock: Clock) -> None:
    plan = ctx.plan
    section.say(
        f"Seconds per step of a real render (`TileRenderer` + Trainer, blends off) against the "
        f"bare model forward+backward on the same number of transformed tiles, run between the "
        f"render's steps (`scripts/bench_render.py`'s `run_fit` and `make_probe`); medians of "
        f"{plan.step_timed} steps after {plan.step_warmup} warm-up. bf16: "
        f"`trainer.precision=bf16-mixed`, bare model under `torch.autocast(bfloat16)`. CUDA "
        f"peak includes the bare model's batch."
    )
    table = section.table(
        [
            "precision",
            "tiles/step",
            "canvas",
            "tiles",
            "step (s)",
            "bare fwd+bwd (s)",
            "step / bare",
            "step ms/tile",
            "CUDA peak (MB)",
        ],
        ctx.formatter(),
    )
    ok = True
    for precision in PRECISIONS:
        for n in plan.step_tiles:
            case = functools.partial(step_case, ctx, precision, n)
            ok &= run_case(ctx, table, [precision, n], case)
    if not ok:
        raise RuntimeError("some cases failed (see the table)")
