"""A non-editable install: the wheel carries configs/, and its commands work from another folder."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, made_once


@pytest.fixture(scope="module")
def installed(request: pytest.FixtureRequest) -> Path:
    """The project's wheel, built once (two builds at once would share the checkout's build/)
    and unpacked with its commands into a folder."""
    return made_once(request, "wheel", build_and_install) / "site"


def build_and_install(tmp: Path) -> None:
    """Build the wheel into ``tmp/dist`` and unpack it with its commands into ``tmp/site``."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(ROOT)]
    subprocess.run(build, check=True, cwd=tmp, capture_output=True)
    (wheel,) = (tmp / "dist").glob("tiledream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml")}
    assert {f"render/{name}" for name in configs} <= names
    assert "render/assets/maco_spectrum.pt" in names  # param=maco's magnitude
    target = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)


def run_installed(target: Path, command: str, *args: str) -> subprocess.CompletedProcess:
    """One of the wheel's commands, from an empty folder, importing only the installed copy."""
    cwd = target.parent / "elsewhere"
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run(
        [str(target / "bin" / command), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_tiledream_composes_from_the_packaged_configs(installed: Path) -> None:
    done = run_installed(
        installed, "tiledream", "tiling.tile_size=[256,448]", "--info", "searchpath"
    )
    assert done.returncode == 0, done.stderr
    assert f"file://{installed / 'render' / 'configs'}" in done.stdout
    done = run_installed(installed, "tiledream", "experiment=wide_eyes", "--cfg", "job")
    assert done.returncode == 0, done.stderr
    assert "- 1344" in done.stdout and "window: cosine" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["tiledream-info", "tiledream-replay"])
def test_the_recipe_commands_are_installed(installed: Path, command: str) -> None:
    done = run_installed(installed, command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {command.replace('-', ' ')} [-h] file")


@pytest.mark.slow
def test_tiledream_layers_lists_the_default_model(installed: Path) -> None:
    done = run_installed(installed, "tiledream-layers")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "conv_stem\t32\t112x112"


@pytest.mark.slow
def test_the_installed_package_loads_its_maco_spectrum(installed: Path) -> None:
    code = "from render.params.maco import SHIPPED_SPECTRUM, MacoParam; MacoParam((8, 8))"
    code += "; print(SHIPPED_SPECTRUM)"
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=installed.parent, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(installed / "render" / "assets" / "maco_spectrum.pt")
