"""Each module of ``render/`` and ``tiling/`` imports on its own: first, in a fresh interpreter.

A module that only imports because another one happened to be imported before it (an import
circle, a missing import hidden by the package's ``__init__``) breaks whoever imports it first.
One interpreter checks them all: before each module, every ``render``/``tiling`` entry leaves
``sys.modules`` (torch, Lightning and Hydra stay loaded, which is what makes it quick), so each
import starts from nothing of the project, as in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("render", "tiling")

CHECK = """if True:
    import importlib, json, sys, traceback

    def forget_project():
        for name in [n for n in sys.modules if n.split(".")[0] in {packages!r}]:
            del sys.modules[name]

    failed = {{}}
    for name in {modules!r}:
        forget_project()
        try:
            importlib.import_module(name)
        except BaseException:
            failed[name] = traceback.format_exc(limit=-3)
    print(json.dumps(failed))
"""


def project_modules(root: Path = ROOT) -> list[str]:
    """Dotted names of every module and package under ``PACKAGES``."""
    names = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def modules_failing_alone(root: Path, modules: list[str]) -> dict[str, str]:
    """{module: traceback} of ``modules`` (of the project under ``root``) that fail when each is
    imported first."""
    code = CHECK.format(packages=PACKAGES, modules=modules)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_module_imports_on_its_own() -> None:
    modules = project_modules()
    assert {"render.objectives.base", "render.objectives.spatial", "tiling.module"} <= set(modules)
    failed = modules_failing_alone(ROOT, modules)
    assert not failed, "\n\n".join(f"{name}:\n{error}" for name, error in failed.items())


def test_an_import_circle_fails(tmp_path: Path) -> None:
    # The check must see a circle: a copy of the project in which spatial.py needs base.py's
    # Objective while base.py is still importing spatial.py.
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    spatial = tmp_path / "render" / "objectives" / "spatial.py"
    spatial.write_text(
        spatial.read_text().replace(
            "from render.errors import UserError\n",
            "from render.errors import UserError\nfrom render.objectives.base import Objective\n",
        )
    )
    pair = ["render.objectives.base", "render.objectives.spatial"]
    failed = modules_failing_alone(tmp_path, pair)
    assert sorted(failed) == pair
    assert "partially initialized module 'render.objectives.base'" in failed[pair[1]]


@pytest.mark.slow
def test_render_imports_no_optional_package_until_it_is_used() -> None:
    """open_clip (``model=clip``), PyAV and OpenCV (videos) are imported where they are used:
    the GPU machines the project is checked on have none of them, and a picture needs none."""
    code = (
        "import sys, render, render.api, render.cli, render.estimate, render.models,"
        " render.objectives, render.run;"
        "print(sorted(m for m in ('open_clip', 'av', 'cv2') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
