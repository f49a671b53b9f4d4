"""Helpers shared by the tests: the real command line and a tiny render for it, and a bare
Trainer for a renderer."""

import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from render.config import compose_with_choices
from render.recipe import Launch, Recipe, Weights

ROOT = Path(__file__).resolve().parents[1]
RENDER = str(ROOT / "scripts" / "render.py")

# A small and quick render: a 2x2 grid of 64-pixel tiles, two octaves (64, 112), a few steps.
TINY = [
    "tiling.base_size=[112,112]",
    "tiling.tile_size=[64,64]",
    "trainer.max_steps=4",
    "render.tiles_per_step=2",
    "render.blend_every=2",
    "objective.layer=blocks.2.0",
    "objective.channel=3",
    "trainer.accelerator=cpu",
]


def a_recipe(*overrides: str) -> Recipe:
    """The recipe a render of ``tiledream OVERRIDES...`` records (with no weight file)."""
    cfg, choices = compose_with_choices(overrides)
    launch = Launch(program=("tiledream",), overrides=overrides, choices=choices)
    return Recipe.make(cfg, launch, Weights("efficientnet_lite0", None, None))


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


def start_render(*overrides: str, session: bool = False) -> subprocess.Popen:
    """``python scripts/render.py OVERRIDES...`` started in the background, its output
    discarded; ``session``: in a session of its own, so ``kill -9`` reaches what it launched.
    """
    return subprocess.Popen(
        [sys.executable, RENDER, *overrides],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=session,
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


def coordinate_canvas(height: int, width: int) -> torch.Tensor:
    """[1, 3, H, W] float64 whose pixels hold their own canvas point (x, y) and 0: resampling
    it bilinearly shows where each output pixel came from."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([(xs + 0.5) / width, (ys + 0.5) / height, torch.zeros_like(xs)])[
        None
    ].double()
