"""Section 2: the tests that need CUDA, the tiling tests and the blended-tiling reference's own
suite against ``tiling``, each a pytest child, side by side."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.device_check import ROOT
from scripts.device_check.budget import Clock
from scripts.device_check.context import Context
from scripts.device_check.report import Section
from scripts.device_check.wheels import WHEELS

REFERENCE_SUITE = WHEELS / "extra" / "test_reference_suite.py"


@dataclass
class PytestRun:
    """Counts from pytest's closing line, its exit status and time."""

    counts: dict[str, int]
    code: int
    seconds: float
    last: str

    @property
    def ok(self) -> bool:
        # 5: no test collected (e.g. no test needs CUDA yet) is not a failure.
        return self.code in (0, 5) and not self.counts.get("failed") and not self.errors

    @property
    def errors(self) -> int:
        return self.counts.get("error", 0) + self.counts.get("errors", 0)


def parse_pytest(output: str) -> dict[str, int]:
    """{'passed': 3, 'skipped': 1, ...} from the last line of pytest output that has counts."""
    pattern = r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)"
    for line in reversed(output.strip().splitlines()):
        found = re.findall(pattern, line)
        if found:
            return {word: int(n) for n, word in found}
    return {}


def start_pytest(ctx: Context, name: str, args: Sequence[str], env: dict[str, str]):
    """Start ``python -m pytest -q ARGS`` in ROOT, its output going to <out>/pytest-NAME.txt."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    log = ctx.args.out / f"pytest-{name}.txt"
    with log.open("w") as out:
        out.write(" ".join(command) + "\n\n")
        out.flush()
        # The child keeps its own copy of the file descriptor.
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def finish_pytest(
    ctx: Context, name: str, process: subprocess.Popen, started: float, clock: Clock
) -> PytestRun:
    """Wait for a started pytest until the section's time is nearly up, then read its counts."""
    try:
        code = process.wait(timeout=max(clock.left() - 5, 1))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = -1
    seconds = time.monotonic() - started
    output = (ctx.args.out / f"pytest-{name}.txt").read_text(errors="replace")
    lines = [line for line in output.strip().splitlines() if line.strip()]
    last = "timed out" if code == -1 else (lines[-1] if lines else "")
    return PytestRun(parse_pytest(output), code, seconds, last)


def cuda_test_args() -> list[str] | None:
    """pytest arguments selecting the tests that need CUDA, or None when no test file mentions
    CUDA. ``-k cuda`` matches the ``cuda`` marker, test names and module names alike (one
    selection for a ``pytest.mark.cuda`` test, a ``test_*_cuda`` one or all of test_cuda.py);
    only the files that mention CUDA are collected, which keeps collection short."""
    files = [p for p in sorted((ROOT / "tests").glob("test_*.py")) if "cuda" in p.read_text()]
    if not files:
        return None
    return [*(str(p.relative_to(ROOT)) for p in files), "-k", "cuda"]


def reference_shim() -> Path:
    """A folder whose ``blended_tiling`` package is this project's ``tiling`` (a drop-in), so
    that the reference's own suite tests this implementation."""
    shim = Path(tempfile.mkdtemp(prefix="gpu-check-shim-"))
    (shim / "blended_tiling").mkdir()
    (shim / "blended_tiling" / "__init__.py").write_text(
        "from tiling import *  # noqa: F403\nfrom tiling import TilingModule  # noqa: F401\n"
    )
    return shim


def pytest_groups(ctx: Context) -> list[tuple[str, list[str] | None, dict[str, str], str]]:
    """(name, pytest args or None when absent, environment, what it is)."""
    groups: list[tuple[str, list[str] | None, dict[str, str], str]] = [
        ("cuda", cuda_test_args(), ctx.env, "tests that need CUDA"),
        ("tiling", list(ctx.plan.tiling_tests), ctx.env, "tiling tests"),
    ]
    reference: list[str] | None = None
    env = ctx.env
    if REFERENCE_SUITE.is_file():
        shim = reference_shim()
        env = {**ctx.env, "PYTHONPATH": os.pathsep.join([str(shim), ctx.env["PYTHONPATH"]])}
        reference = [str(REFERENCE_SUITE.relative_to(ROOT))]
    groups.append(("reference", reference, env, "blended-tiling's suite against `tiling`"))
    return groups


def section_tests(ctx: Context, section: Section, clock: Clock) -> None:
    table = section.table(
        ["group", "pytest arguments", "passed", "failed", "skipped", "errors", "s", "result"],
        ctx.formatter(),
    )
    if not ctx.cuda():
        section.say("skipped: no CUDA (the CUDA tests run but skip themselves on this machine).")
    # The groups run side by side: each is mostly a fresh interpreter importing torch.
    started, running = time.monotonic(), []
    for name, args, env, what in pytest_groups(ctx):
        process = start_pytest(ctx, name, args, env) if args is not None else None
        running.append((name, f"{name} ({what})", args, process))
    failed = []
    try:
        for name, label, args, process in running:
            if process is None:
                table.rows.append([label, "", "", "", "", "", "", "skipped: none found"])
                continue
            run = finish_pytest(ctx, name, process, started, clock)
            result = "ok" if run.ok else f"exit {run.code}: {run.last}"
            counts = [run.counts.get(k, 0) for k in ("passed", "failed", "skipped")]
            table.rows.append([label, " ".join(args), *counts, run.errors, run.seconds, result])
            ctx.report.save()
            if not run.ok:
                failed.append(name)
    finally:
        # Over budget or failed: leave no test run behind to compete with the next sections.
        for *_, process in running:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    if failed:
        raise RuntimeError(f"failing test groups: {', '.join(failed)} (see pytest-*.txt)")
