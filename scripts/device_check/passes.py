"""Section 4: peak device and host memory and seconds per pass over all tiles, per canvas, with
``render.offload`` off and on."""

from __future__ import annotations

import functools
import resource

from scripts.device_check.budget import Clock
from scripts.device_check.context import Context, run_case_in_time
from scripts.device_check.report import Section

MB = 2**20


def host_rss_mb() -> str:
    """This process's RSS now and its peak so far (ru_maxrss: kilobytes on Linux)."""
    import psutil

    now = psutil.Process().memory_info().rss / MB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"{now:.0f} (peak {peak:.0f})"


def pass_case(ctx: Context, size: int, offload: bool) -> list[object]:
    """One pass over every tile of a ``size`` square canvas (capped, then extrapolated)."""
    bench, plan = ctx.need_bench(), ctx.plan
    overrides = [
        *plan.overrides,
        f"tiling.base_size=[{size},{size}]",
        f"render.offload={str(offload).lower()}",
        f"render.tiles_per_step={plan.pass_tiles}",
    ]
    cfg = bench.compose_config(overrides)
    tiling = bench.make_tiling(cfg.tiling, (size, size))
    param = bench.build(cfg.param, tile_size=tuple(cfg.tiling.tile_size))
    states = bench.state_dtype(cfg.render.state_dtype)
    needed = bench.bytes_needed(tiling, param, (size, size), states)
    per_pass = len(bench.TileBatches(tiling.num_tiles(), plan.pass_tiles, 0))
    timed = min(per_pass, plan.pass_max_timed)
    fit = bench.run_fit(ctx.model(), overrides, plan.step_warmup, timed, blend_repeats=1)
    # A whole pass timed is its sum; a capped one is extrapolated from the median step.
    pass_s = sum(fit.steps) if timed == per_pass else f"~{per_pass * fit.step_s:.4g}"
    if not offload:  # canvases grow: the last one is the poster's best guide
        from scripts.bench.poster import PassRate

        blend = fit.blend_s / (size * size / 1e6)
        ctx.pass_rate = PassRate(per_pass * fit.step_s / tiling.num_tiles(), blend)
    peak = fit.cuda_peak_mb if fit.cuda_peak_mb is not None else "skipped: no CUDA"
    return [
        tiling.num_tiles(),
        per_pass,
        fit.step_s,
        pass_s,
        fit.blend_s,
        peak,
        host_rss_mb(),
        needed / MB,
    ]


def section_passes(ctx: Context, section: Section, clock: Clock) -> None:
    plan = ctx.plan
    section.say(
        f"One pass = every tile optimised once, at {plan.pass_tiles} tiles per step "
        f"(`render.tiles_per_step`), fp32, blends off, one `blend()` timed after it; at most "
        f"{plan.pass_max_timed} steps are timed (s/pass with ~ is steps/pass x median step). "
        f"CUDA peak: `torch.cuda.max_memory_allocated`, reset before each render."
    )
    table = section.table(
        [
            "canvas",
            "offload",
            "tiles",
            "steps/pass",
            "step (s)",
            "s/pass",
            "blend (s)",
            "CUDA peak (MB)",
            "host RSS MB (peak)",
            "budget.bytes_needed (MB)",
        ],
        ctx.formatter(),
    )
    ok, last = True, None  # last: (size, seconds) of the last finished case, for estimates
    for size in [*plan.canvases, *plan.optional_canvases]:
        for offload in (False, True):
            label = [f"{size}x{size}", offload]
            # A canvas 2x wider costs about 4x: skip what would not finish in time.
            estimate = 0.0 if last is None else 1.5 * last[1] * (size / last[0]) ** 2
            case = functools.partial(pass_case, ctx, size, offload)
            passed, seconds = run_case_in_time(ctx, table, label, case, clock, estimate)
            ok &= passed
            if seconds is not None:
                last = (size, seconds)
    if not ok:
        raise RuntimeError("some cases failed (see the table)")
