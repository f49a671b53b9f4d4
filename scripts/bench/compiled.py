"""Part 5: the model's forward + backward, eager against ``torch.compile`` and CUDA graphs.

Where compilation pays decides whether a render should compile its model: this part times the
default model's forward to its logits and backward to a batch of transformed tiles, eager, under
``torch.compile(model)`` and under ``torch.compile(model, mode="reduce-overhead")``, which
replays the compiled step as CUDA graphs (CUDA only).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from render.config import compose_config
from render.models import FeatureModel
from scripts.bench.common import machine_line, markdown_table, median, synchronize
from scripts.bench.fit import Parts

#: Column name -> torch.compile mode; "reduce-overhead" replays the step as CUDA graphs.
COMPILE_MODES = {"torch.compile": "default", "+ CUDA graphs": "reduce-overhead"}

COMPILE_HEADERS = [
    "tiles/step",
    "eager (ms)",
    *(f"{name} {what}" for name in COMPILE_MODES for what in ("first call (s)", "ms", "speed-up")),
]


def timed_calls(step: Callable[[], None], device: torch.device, warmup: int, timed: int):
    """Seconds of the first call (compilation included), then of each of ``timed`` calls."""
    seconds = []
    for _ in range(1 + warmup + timed):
        started = time.perf_counter()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1 + warmup :]


def compile_row(
    model: FeatureModel,
    size: tuple[int, int],
    n: int,
    device: torch.device,
    warmup: int,
    timed: int,
    backend: str,
) -> list[object]:
    """One row of :data:`COMPILE_HEADERS` for ``n`` tiles of ``size`` (the model's input);
    ``backend`` is torch.compile's.
    """
    model = model.to(device)
    images = torch.rand(n, 3, *size, device=device).requires_grad_(True)
    cuda = device.type == "cuda"

    def step_of(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            if cuda:
                # CUDA graphs reuse their output buffers: each call is a new step.
                torch.compiler.cudagraph_mark_step_begin()
            images.grad = None
            forward(images)[:, 0].sum().backward()

        return step

    eager = median(timed_calls(step_of(model), device, warmup, timed)[1])
    row: list[object] = [n, 1000 * eager]
    for mode in COMPILE_MODES.values():
        if mode == "reduce-overhead" and not cuda:
            row += ["n/a (CUDA only)"] * 3
            continue
        torch._dynamo.reset()
        compiled = torch.compile(model, mode=mode, backend=backend)
        first, rest = timed_calls(step_of(compiled), device, warmup, timed)
        row += [first, 1000 * median(rest), eager / median(rest)]
    return row


def part_compile(model: FeatureModel, args: argparse.Namespace) -> None:
    """Part 5: eager against compiled, per tiles_per_step, with inductor (minutes on a CPU)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = Parts(model, compose_config([]), device).input_size
    rows = [
        compile_row(model, size, n, device, args.warmup, args.timed, "inductor")
        for n in args.tiles_per_step
    ]
    print(f"\n### 5. Compiled model\n\n{machine_line()}\n")
    print(
        f"Milliseconds of the default model's forward to its logits and backward to the "
        f"transformed tiles, float32, medians of {args.timed} calls after {args.warmup} "
        f"warm-up; the first call's seconds include compilation (inductor).\n"
    )
    print(markdown_table(COMPILE_HEADERS, rows))
