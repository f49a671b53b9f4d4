"""What the sections share (options, plan, report, bench_render and the model) and how one
case of a section runs: caught on its own, saved, and skipped when it would not finish in time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from scripts.device_check import ROOT, SCRIPTS
from scripts.device_check.budget import Clock, OverBudget
from scripts.device_check.plan import Plan
from scripts.device_check.report import Report, Table, error_text, plain_table


@dataclass
class Context:
    """What the sections share: options, plan, report, the loaded bench module and model."""

    args: argparse.Namespace
    plan: Plan
    report: Report
    install_notes: list[str]
    env: dict[str, str]  # environment of child processes (PYTHONPATH includes ROOT)
    bench: ModuleType | None = None
    bench_error: str = ""
    _model: Any = None
    _cfg: Any = None
    step_seconds: dict[tuple[str, int], float] = field(default_factory=dict)
    pass_rate: Any = None  # section 4's largest canvas without offload (bench.poster.PassRate)

    def need_bench(self) -> ModuleType:
        if self.bench is None:
            raise RuntimeError(f"scripts/bench_render.py did not load: {self.bench_error}")
        return self.bench

    def config(self) -> Any:
        """The render config with the plan's overrides, composed once (Hydra takes ~0.3 s)."""
        if self._cfg is None:
            self._cfg = self.need_bench().compose_config(self.plan.overrides)
        return self._cfg

    def model(self) -> Any:
        """The default model, built once (sections 3 and 4 reuse it, as bench_render does)."""
        if self._model is None:
            self._model = self.need_bench().build(self.config().model)
        return self._model

    def formatter(self) -> Any:
        return self.bench.markdown_table if self.bench is not None else plain_table

    def cuda(self) -> bool:
        import torch

        return torch.cuda.is_available()

    def device(self) -> Any:
        import torch

        return torch.device("cuda" if self.cuda() else "cpu")


def run_case(ctx: Context, table: Table, label: list[object], case: Callable[[], list[object]]):
    """Add ``label + case()`` to ``table``, or ``label + [error]``; free memory either way."""
    started = time.monotonic()
    try:
        cells = case()
        ok = True
    except OverBudget:
        # The section is over: say which case it stopped in, then let the section end.
        table.rows.append([*label, "stopped: the section's share of the budget ran out"])
        ctx.report.save()
        raise
    except Exception as error:  # one case failing must not stop the others
        cells, ok = [f"error: {error_text(error)}"], False
        traceback.print_exc()
    table.rows.append([*label, *cells])
    if ctx.bench is not None:
        ctx.bench.free_memory()
    ctx.report.save()
    print(
        f"  {' '.join(map(str, label))}: {'ok' if ok else cells[0]} "
        f"({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    return ok


def run_case_in_time(
    ctx: Context,
    table: Table,
    label: list[object],
    case: Callable[[], list[object]],
    clock: Clock,
    estimate: float,
) -> tuple[bool, float | None]:
    """:func:`run_case`, unless ``estimate`` seconds would not finish in what ``clock`` has
    left: then a skipped row. Returns whether it passed (a skip does) and its seconds (None
    when skipped), for the next case's estimate.
    """
    if estimate > clock.left():
        table.rows.append([*label, f"skipped: needs ~{estimate:.0f} s, {clock.left():.0f} s left"])
        ctx.report.save()
        return True, None
    started = time.monotonic()
    ok = run_case(ctx, table, label, case)
    return ok, time.monotonic() - started


def child_env(cpu: bool) -> dict[str, str]:
    """Environment of the pytest and render.py children: ROOT importable, CUDA hidden for --cpu."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def load_bench() -> ModuleType:
    """scripts/bench_render.py as a module (not a package member), its configs registered."""
    spec = importlib.util.spec_from_file_location("bench_render", SCRIPTS / "bench_render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.register_configs()
    return module
