"""The command line of ``scripts/gpu_check.py``: install the wheels, then run the sections, each
on its share of the budget, and write the report."""

from __future__ import annotations

import argparse
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.device_check.budget import Clock, OverBudget, deadline
from scripts.device_check.compiled import section_compile
from scripts.device_check.context import Context, child_env, load_bench
from scripts.device_check.passes import section_passes
from scripts.device_check.plan import make_plan
from scripts.device_check.poster import section_poster
from scripts.device_check.report import Report, Section, error_text
from scripts.device_check.steps import section_steps
from scripts.device_check.suites import section_tests
from scripts.device_check.versions import cpu_name, section_versions
from scripts.device_check.wheels import ensure_wheels


@dataclass
class Spec:
    """A section: its title, function, weight in the budget and the least time worth trying."""

    title: str
    run: Callable[[Context, Section, Clock], None]
    weight: float
    min_s: float


def specs(cpu: bool) -> list[Spec]:
    """Budget shares: the poster and the passes need the most; --cpu minimums are seconds."""
    scale = 0.1 if cpu else 1.0
    return [
        # Section 1 creates the CUDA context, which can take seconds on a cold device.
        Spec("1. Versions and device", section_versions, 0.04, 20 * scale),
        # The tests run side by side on the host's cores; hypothesis's tiling tests are the longest.
        Spec("2. Tests", section_tests, 0.26, 20 * scale),
        Spec("3. Render step vs bare model forward+backward", section_steps, 0.2, 30 * scale),
        Spec("4. Memory and seconds per pass", section_passes, 0.28, 40 * scale),
        Spec("5. The largest poster (experiment=poster_16k)", section_poster, 0.22, 30 * scale),
        Spec("6. Compiled model (torch.compile, CUDA graphs)", section_compile, 0.12, 40 * scale),
    ]


def run_sections(ctx: Context, budget: Clock) -> list[Section]:
    """Each section on its share of what is left, caught on its own, saved as it ends."""
    todo = [s for s in specs(ctx.plan.cpu) if s.title.split(".")[0] in ctx.args.sections]
    for i, spec in enumerate(todo):
        later = todo[i + 1 :]
        reserve = sum(s.min_s for s in later)
        weights = sum(s.weight for s in todo[i:])
        share = min(budget.left() * spec.weight / weights, budget.left() - reserve)
        # Time an earlier section left unused flows to this one (the weights are of what is left).
        share = max(share, min(spec.min_s, budget.left()))
        section = Section(spec.title)
        ctx.report.sections.append(section)
        print(f"\n== {spec.title} (share {share:.0f} s of {budget.left():.0f} s left)", flush=True)
        started = time.monotonic()
        if share < spec.min_s:
            section.status = (
                f"skipped: {budget.left():.0f} s of budget left, needs {spec.min_s:.0f} s"
            )
        else:
            try:
                with deadline(share):
                    spec.run(ctx, section, Clock(time.monotonic() + share))
                section.status = "ok"
            except OverBudget as stop:
                section.status = f"failed: {stop}"
            except Exception as error:  # one section failing must not stop the others
                traceback.print_exc()
                section.status = f"failed: {error_text(error)}"
        section.seconds = time.monotonic() - started
        ctx.report.save()
        print(section.render(), flush=True)
    return ctx.report.sections


def heading(args: argparse.Namespace) -> str:
    """The report's title: the device's name, the command, the time and torch's version."""
    try:
        import torch

        cuda = torch.cuda.is_available()
        device = torch.cuda.get_device_name(0) if cuda else f"CPU only ({cpu_name()})"
        torch_version = torch.__version__
    except Exception as error:  # the sections will say what is wrong; the report still starts
        device, torch_version = f"unknown ({error_text(error)})", "n/a"
    flags = [flag for flag, on in (("--cpu", args.cpu), ("--quick", args.quick)) if on]
    if args.sections != parse_args([]).sections:
        flags.append(f"--sections {','.join(args.sections)}")
    if args.poster_updates is not None:
        flags.append(f"--poster-updates {args.poster_updates:g}")
    command = " ".join(["scripts/gpu_check.py", *flags])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"# Device check: {device}\n\n`{command}`: {stamp}, torch {torch_version}, "
        f"budget {args.budget_s:.0f} s"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/gpu_check.py",
        description="The prepared device check: one command that measures the renderer on a CUDA "
        "machine (see scripts/gpu_check.py).",
    )
    parser.add_argument("--out", type=Path, default=Path("gpu-check"), help="report folder")
    parser.add_argument("--cpu", action="store_true", help="hide CUDA; the same paths on the CPU")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    parser.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget")
    parser.add_argument(
        "--sections",
        type=lambda text: text.split(","),
        default=[str(n) for n in range(1, 7)],
        help="the sections to run, e.g. 1,4,5 (5 sizes the poster from 4)",
    )
    parser.add_argument(
        "--poster-updates", type=float, help="section 5: render.updates_per_tile of the poster"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: CUDA stays hidden
    if args.cpu and args.quick:
        # Tiny tensors gain nothing from threads, and on a small shared machine the threads of
        # this run and its pytest children only contend: measured 65 s instead of 98 s.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    notes = ensure_wheels()
    budget = Clock(started + args.budget_s)
    report = Report(args.out / "gpu-check.md", "")
    ctx = Context(args, make_plan(args), report, notes, child_env(args.cpu))
    try:
        ctx.bench = load_bench()
    except Exception as error:  # sections that need it fail one by one, with this text
        traceback.print_exc()
        ctx.bench_error = error_text(error)
    report.heading = heading(args)
    sections = run_sections(ctx, budget)
    failed = [s.title.split(".")[0] for s in sections if s.status.startswith("failed")]
    skipped = [s.title.split(".")[0] for s in sections if s.status.startswith("skipped")]
    report.summary = (
        f"**Summary: {len(sections) - len(failed) - len(skipped)} ok, {len(failed)} failed"
        f"{' (' + ', '.join(failed) + ')' if failed else ''}, {len(skipped)} skipped"
        f"{' (' + ', '.join(skipped) + ')' if skipped else ''}; wall time "
        f"{time.monotonic() - started:.0f} s.**"
    )
    report.save()
    print(f"\n{report.summary}\nreport: {report.path}", flush=True)
    return 1 if failed else 0
