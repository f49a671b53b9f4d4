"""Helpers shared by the tests: the real command line, and a bare Trainer for a renderer."""

import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl

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


def fit(module: pl.LightningModule, steps: int, callbacks=(), **trainer) -> pl.Trainer:
    """Fit ``module`` for ``steps`` steps with no logger, checkpoints or progress bar.

    ``trainer`` keys override the defaults (the CPU, full precision).
    """
    defaults = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False}
    trainer = pl.Trainer(
        max_steps=steps,
        max_epochs=-1,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **{**defaults, **trainer},
    )
    trainer.fit(module)
    return trainer
