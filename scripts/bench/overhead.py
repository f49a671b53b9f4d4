"""Part 1: a real render step against the bare model forward + backward, per tiles_per_step."""

from __future__ import annotations

import argparse

import torch

from render.config import compose_config
from render.models import FeatureModel
from scripts.bench.common import machine_line, markdown_table, median
from scripts.bench.fit import PHASES, Parts, make_probe, run_fit

#: Overhead target for tiles_per_step >= 4 (reported, not asserted).
OVERHEAD_TARGET = 0.15
#: A canvas of 2x4 tiles of 224 with 25% overlap: every tiles_per_step in (1, 4, 8) fills
#: every batch (the default 3x3 canvas would leave a 1-tile batch per epoch for 4 and 8).
OVERHEAD_CANVAS = (392, 728)


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
