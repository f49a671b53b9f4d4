"""Section 6: the model's forward+backward eager against ``torch.compile`` and CUDA graphs."""

from __future__ import annotations

import functools

from scripts.device_check.budget import Clock
from scripts.device_check.context import Context, run_case_in_time
from scripts.device_check.plan import Plan
from scripts.device_check.report import Section


def compile_calls(plan: Plan) -> tuple[int, int]:
    """(warm-up, timed) calls of each compile case: a median needs two, CUDA graphs a warm-up."""
    return plan.step_warmup + 1, max(plan.step_timed, 2)


def compile_case(ctx: Context, n: int) -> list[object]:
    """Eager against compiled forward+backward at ``n`` tiles (``bench.compile_row``)."""
    # On the CPU only the tracing is checked: inductor's C++ build takes minutes there.
    backend = "inductor" if ctx.cuda() else "eager"
    warmup, timed = compile_calls(ctx.plan)
    bench, device = ctx.need_bench(), ctx.device()
    size = bench.Parts(ctx.model(), ctx.config(), device).input_size
    return bench.compile_row(ctx.model(), size, n, device, warmup, timed, backend)[1:]


def section_compile(ctx: Context, section: Section, clock: Clock) -> None:
    plan = ctx.plan
    warmup, timed = compile_calls(plan)
    section.say(
        "Milliseconds of the default model's forward to its logits and backward to the "
        "transformed tiles, eager against `torch.compile(model)` and against "
        '`torch.compile(model, mode="reduce-overhead")` (CUDA graphs), float32; medians of '
        f"{timed} calls after {warmup} warm-up. The first "
        "call's seconds include compilation. On the CPU the compile backend is `eager` (tracing "
        "only): the code path is checked, the speed is not."
    )
    table = section.table(ctx.need_bench().COMPILE_HEADERS, ctx.formatter())
    ok, last = True, 0.0  # last: seconds of the last case, compilation included
    for n in plan.compile_tiles:
        # Each batch size compiles again: skip one that would not finish in time.
        case = functools.partial(compile_case, ctx, n)
        passed, seconds = run_case_in_time(ctx, table, [n], case, clock, 1.2 * last)
        ok &= passed
        if seconds is not None:
            last = seconds
    if not ok:
        raise RuntimeError("some cases failed (see the table)")
