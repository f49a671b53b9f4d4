"""Helpers every part shares: the config, device waits, medians, the machine line, tables."""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import math
import os
import platform
import statistics
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[2]
RENDER_SCRIPT = ROOT / "scripts" / "render.py"
MB = 2**20


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that wall-clock times are the work's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median(values: Sequence[float]) -> float:
    """Median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def machine_line() -> str:
    """One line naming the machine, torch, its thread count and the device used."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    device = (
        f"CUDA {torch.cuda.get_device_name()}"
        if torch.cuda.is_available()
        else "CPU only (no CUDA)"
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"machine: {cpu}, {os.cpu_count()} logical cores (load average {load}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM; torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads; pytorch-lightning {pl.__version__}; {device}"
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are printed with 4 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Swallow stdout/stderr (progress bar, warnings) and Lightning's info; replay on error."""
    captured = io.StringIO()
    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(captured),
            contextlib.redirect_stdout(captured),
        ):
            warnings.simplefilter("ignore")
            yield captured
    except BaseException:
        sys.stderr.write(captured.getvalue()[-4000:])
        raise
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def free_memory() -> None:
    """Collect garbage and return cached CUDA blocks, so that peaks are per measurement."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
