"""Helpers shared by the tests that drive the real command line."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RENDER = str(ROOT / "scripts" / "render.py")


def run_render(*overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python scripts/render.py OVERRIDES...`` from the repository root."""
    return subprocess.run(
        [sys.executable, RENDER, *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=600,
    )
