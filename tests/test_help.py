"""``--help`` of every command: what tiledream does and how to use it, and only real choices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from render import cli
from render.config import SCHEMAS

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python scripts/SCRIPT ARGS...`` from the repository root."""
    command = [sys.executable, str(ROOT / "scripts" / script), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_render_help_opens_with_what_tiledream_does_and_offers_only_real_options() -> None:
    done = run_script("render.py", "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("tiledream: feature visualisations and deep-dream pictures")
    for part in ("Usage: tiledream", "Common commands:", "tiledream plan", "Documentation:"):
        assert part in text
    assert "_schema" not in text
    # Each group offers exactly its yaml files, the options a user can choose.
    groups = text.split("== Config groups")[1].split("== Config:")[0].strip().splitlines()[1:]
    offered = dict(line.split(": ", 1) for line in groups if line)
    assert set(offered) == {*SCHEMAS, "experiment"}
    for group, names in offered.items():
        files = sorted(path.stem for path in (ROOT / "configs" / group).glob("*.yaml"))
        assert names.split(", ") == files, group


@pytest.mark.parametrize(
    ("script", "usage"),
    [("plan.py", "usage: tiledream plan"), ("layers.py", "usage: tiledream-layers")],
)
def test_plan_and_layers_print_their_usage(script: str, usage: str) -> None:
    done = run_script(script, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(usage) and "KEY=VALUE" in done.stdout


def test_tiledream_plan_help_is_the_plans_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["tiledream", "plan", "experiment=poster", "-h"])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("usage: tiledream plan [-h] [KEY=VALUE ...]")
