"""scripts/gpu_check.py and its package scripts/device_check: the helpers, that importing it
imports nothing but the standard library (the wheels go in first), and a whole ``--cpu --quick``
run (slow) so it cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.device_check.budget import OverBudget, deadline
from scripts.device_check.report import Report, Section, plain_table
from scripts.device_check.suites import PytestRun, parse_pytest
from scripts.device_check.wheels import wheel_fits

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
HEADINGS = [
    "## 1. Versions and device",
    "## 2. Tests",
    "## 3. Render step vs bare model forward+backward",
    "## 4. Memory and seconds per pass",
    "## 5. The largest poster",
    "## 6. Compiled model",
]


def test_script_imports_only_the_standard_library_before_the_wheels(tmp_path: Path) -> None:
    # On the GPU machine hydra, omegaconf, psutil... come from gpu-wheels/ after the script
    # starts: importing it (and every module of its package) must not need them, nor torch.
    code = """if True:
        import importlib, pkgutil, runpy, sys
        runpy.run_path(sys.argv[1])
        import scripts.device_check as package
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
        heavy = ("torch", "render", "omegaconf", "hydra", "psutil", "numpy")
        print(sorted(name for name in heavy if name in sys.modules))
    """
    done = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPT)],
        cwd=tmp_path,  # no PYTHONPATH: the script puts the checkout on sys.path itself
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_parse_pytest_reads_the_closing_line() -> None:
    output = "....s\nFAILED x\n2 failed, 3 passed, 1 skipped, 4 deselected in 1.2s\n"
    counts = parse_pytest(output)
    assert counts == {"failed": 2, "passed": 3, "skipped": 1, "deselected": 4}
    assert parse_pytest("no tests ran in 0.1s") == {}
    run = PytestRun({"passed": 3, "errors": 1}, 1, 0.1, "")
    assert run.errors == 1 and not run.ok
    assert PytestRun({}, 5, 0.1, "").ok  # nothing selected is not a failure


def test_wheel_fits_this_python_only() -> None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert wheel_fits("hydra_core-1.3.8-py3-none-any.whl")
    assert wheel_fits("psutil-7.2.2-cp36-abi3-manylinux2010_x86_64.whl")
    assert wheel_fits(f"PyYAML-6.0.2-{tag}-{tag}-manylinux2014_x86_64.whl")
    assert not wheel_fits("PyYAML-6.0.2-cp39-cp39-manylinux2014_x86_64.whl")


def test_deadline_stops_a_section_and_is_not_an_exception() -> None:
    with pytest.raises(OverBudget), deadline(0.05):
        time.sleep(2)
    # Per-case handlers catch Exception: running out of budget must get past them.
    assert not issubclass(OverBudget, Exception)


def test_report_keeps_partial_tables(tmp_path: Path) -> None:
    report = Report(tmp_path / "gpu-check.md", "# Device check: test")
    section = Section("3. Steps")
    report.sections.append(section)
    table = section.table(["a", "b"], plain_table)
    table.rows.append([1, "error: x | y\nz"])
    report.save()
    text = (tmp_path / "gpu-check.md").read_text()
    assert "## 3. Steps" in text and "| 1 | error: x / y z |" in text


def test_poster_is_the_largest_whose_estimate_fits() -> None:
    from render.config import compose_config
    from scripts.bench.poster import POSTER_SIZES, PassRate, choose_size, estimate_s

    rate = PassRate(seconds_per_tile=0.26e-3, blend_s_per_mpixel=0.01)  # the H200's, about
    needs = {
        side: estimate_s(
            compose_config(["experiment=poster_16k", f"tiling.base_size=[{side},{side}]"]), rate
        )
        for side in POSTER_SIZES
    }
    assert needs[16384] > 2 * needs[8192] > 4 * needs[4096] > 4 * needs[2048] > 0
    assert choose_size(needs, needs[8192]) == 8192
    assert choose_size(needs, needs[16384] + 1) == 16384
    assert choose_size(needs, needs[2048] - 1) is None


@pytest.mark.slow
def test_cpu_quick_run_writes_every_section(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(SCRIPT), "--cpu", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = (tmp_path / "gpu-check.md").read_text()
    assert report.startswith("# Device check: CPU only")
    for heading in HEADINGS:
        assert heading in report
    assert "**Summary: 6 ok, 0 failed, 0 skipped" in report
    # Section 5: the poster end to end, its deep zoom and TIFF written, levels measured on it,
    # its whole picture and a full-size crop read back from render.tif.
    assert (tmp_path / "poster.jpg").is_file() and (tmp_path / "poster-crop.png").is_file()
    sections = re.split(r"^## ", report, flags=re.M)
    steps = [line.split("|")[1:-1] for line in sections[3].splitlines() if line.startswith("| ")]
    passes = [line.split("|")[1:-1] for line in sections[4].splitlines() if line.startswith("| ")]
    # Header row, then fp32 and bf16; step seconds, bare seconds and their ratio are numbers.
    assert [row[0].strip() for row in steps[1:]] == ["fp32", "bf16 autocast"]
    assert all(float(row[4]) > 0 and float(row[5]) > 0 and float(row[6]) > 0 for row in steps[1:])
    # Offload false and true, each with a step time and "skipped: no CUDA" for the CUDA peak.
    assert [row[1].strip() for row in passes[1:]] == ["False", "True"]
    assert all(float(row[4]) > 0 and "no CUDA" in row[7] for row in passes[1:])
    assert re.search(r"\| passed \|", sections[2])
    rows = (line.split("|")[1:-1] for line in sections[5].splitlines() if line.startswith("| "))
    poster = {row[0].strip(): row[1].strip() for row in rows}
    assert poster["canvas"] == "128x128" and poster["exit"] == "0"
    assert "render.dzi" in poster["outputs"] and "render_files/ (" in poster["outputs"]
    assert "render.tif" in poster["outputs"] and float(poster["wall (s)"]) > 0
    assert re.fullmatch(r"\d+ MB", poster["peak host memory (render process)"])
    levels = next(value for key, value in poster.items() if key.startswith("levels"))
    assert re.fullmatch(r"1x1: \d+%, 2x2: \d+%, 4x4: \d+%", levels)
    compiled = [line.split("|")[1:-1] for line in sections[6].splitlines() if line.startswith("| ")]
    # Eager, then torch.compile: first call, ms and speed-up are numbers; CUDA graphs need CUDA.
    assert len(compiled) == 2 and all(float(compiled[1][i]) > 0 for i in (1, 2, 3, 4))
    assert "CUDA only" in compiled[1][5]
