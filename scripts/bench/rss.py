"""Peak RSS of a fresh render process (GNU ``time -v``, else psutil polling)."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from scripts.bench.common import RENDER_SCRIPT


def parse_time_v(text: str) -> int | None:
    """Peak RSS in bytes from GNU ``/usr/bin/time -v`` output, or None if absent."""
    found = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", text)
    return int(found.group(1)) * 1024 if found else None


def peak_rss_of(
    command: list[str], timeout_s: float, cwd: Path | None = None
) -> tuple[int | None, float, str]:
    """Run ``command`` (in ``cwd``); return (peak RSS bytes of it and its children, seconds,
    error or "")."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    start = time.perf_counter()
    if gnu_time is not None:
        with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
            try:
                done = subprocess.run(
                    [gnu_time, "-v", "-o", report.name, *command],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    timeout=timeout_s,
                    check=False,
                    cwd=cwd,
                )
            except subprocess.TimeoutExpired:
                return None, time.perf_counter() - start, f"timed out after {timeout_s:.0f} s"
            peak = parse_time_v(Path(report.name).read_text())
        if peak is not None:
            error = "" if done.returncode == 0 else last_line(done.stderr, done.returncode)
            return peak, time.perf_counter() - start, error
    # Fallback: poll the process tree's RSS (may miss a short spike between polls).
    process = psutil.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    peak = 0
    while process.poll() is None:
        if time.perf_counter() - start > timeout_s:
            process.kill()
            break
        with contextlib.suppress(psutil.Error):
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        time.sleep(0.02)
    stderr = process.stderr.read() if process.stderr else ""
    code = process.wait()
    error = "" if code == 0 else last_line(stderr, code)
    return peak or None, time.perf_counter() - start, error


def last_line(stderr: str, code: int) -> str:
    """The last non-empty line of a failed process's stderr, with its exit status."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    return f"exit {code}: {lines[-1][:120] if lines else ''}"


def render_rss(
    size: int, timeout_s: float, extra: Sequence[str] = ()
) -> tuple[int | None, float, str]:
    """Peak RSS of ``scripts/render.py`` on a ``size`` x ``size`` canvas for 2 steps.

    ``extra`` Hydra overrides are appended (e.g. ``render.offload=true``).

    The child inherits this process's environment; ``--threads`` reaches it as
    ``OMP_NUM_THREADS`` (set in :func:`main`).
    """
    with tempfile.TemporaryDirectory(prefix="bench_render_rss_") as tmp:
        command = [
            sys.executable,
            str(RENDER_SCRIPT),
            f"tiling.base_size=[{size},{size}]",
            "render.octaves=1",
            "trainer.max_steps=2",
            f"hydra.run.dir={tmp}",
            *extra,
        ]
        return peak_rss_of(command, timeout_s)
