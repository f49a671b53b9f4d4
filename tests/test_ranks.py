"""Multi-process renders (two CPU processes, gloo) that cannot hang when one process fails."""

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import RENDER, ROOT, kill_two_ranks_in_octave2, run_render
from PIL import Image

TESTS = os.path.dirname(os.path.abspath(__file__))

TWO_RANKS = [
    "tiling.base_size=[160,160]",
    "tiling.tile_size=[64,64]",
    "render.tiles_per_step=2",
    "render.blend_every=2",
    "trainer.max_steps=8",
    "objective.layer=blocks.2.0",
    "objective.channel=3",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.strategy=ddp",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, message",
    [
        ("nan_on_rank_1", "the objective at step 2 on rank 1 became non-finite"),
        ("killed_on_rank_1", "another process of this render ended"),
    ],
)
def test_a_failing_rank_stops_every_rank_with_one_error_and_no_picture(tmp_path, fault, message):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            RENDER,
            *TWO_RANKS,
            f"objective._target_=faults.{fault}",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,  # a hang would wait for the 30-minute collective timeout
    )
    seconds = time.monotonic() - start
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert errors and all(message in line for line in errors), errors
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("render*.png")), "nothing written after the failure"
    assert seconds < 200


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit images, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


@pytest.mark.slow
def test_one_and_two_processes_render_the_same_picture(tmp_path):
    # No trainer.max_steps: each octave gives every tile the same number of updates on any
    # number of ranks (3 tiles of a rank's shard of 5 or 4: batches of 2 and 1 or 2 and 2).
    same = [o for o in TWO_RANKS if not o.startswith(("trainer.", "render.blend_every"))]
    same += ["render.updates_per_tile=4", "render.blend_every=1", "trainer.accelerator=cpu"]
    # With the transparency map: each rank accumulates its own tiles', blended in the writing.
    same += ["output.alpha=true"]
    pictures, alphas = [], []
    for devices in (1, 2):
        run_dir = tmp_path / f"devices{devices}"
        extra = ["trainer.devices=2", "trainer.strategy=ddp"] if devices == 2 else []
        result = subprocess.run(
            [sys.executable, RENDER, *same, *extra, f"hydra.run.dir={run_dir}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        with Image.open(run_dir / "render.png") as png:
            pictures.append(np.asarray(png.convert("RGB")))
        with Image.open(run_dir / "render_alpha.png") as png:
            alphas.append(np.asarray(png))
    one, two = pictures
    assert psnr(one, two) > 40, f"PSNR {psnr(one, two):.1f} dB"
    assert psnr(*alphas) > 30, f"alpha PSNR {psnr(*alphas):.1f} dB"
    assert alphas[0].std() > 10
    # A picture, not a flat canvas on which any two renders would agree.
    assert one.std() > 8  # the starting noise: below 1


# Two octaves (64 then 160) with a checkpoint every 4 steps, on 2 processes.
RESUMABLE = [
    "tiling.base_size=[160,160]",
    "tiling.tile_size=[64,64]",
    "render.tiles_per_step=2",
    "render.blend_every=3",
    "render.octaves=2",
    "objective.layer=blocks.2.0",
    "objective.channel=3",
    "trainer.accelerator=cpu",
    "trainer.max_steps=12",
    "checkpoint.every_n_steps=4",
    # The transparency map's accumulators are saved with each rank's tiles.
    "output.alpha=true",
]


@pytest.mark.slow
def test_two_processes_killed_resume_to_the_same_picture_and_another_count_is_refused(
    tmp_path,
):
    ddp = ["trainer.devices=2", "trainer.strategy=ddp"]
    run_render(*RESUMABLE, *ddp, f"hydra.run.dir={tmp_path / 'whole'}")
    run_dir = tmp_path / "killed"
    kill_two_ranks_in_octave2(run_dir, *RESUMABLE, *ddp)
    # Each rank saved its own tiles: rank 1's file beside Lightning's (rank 0's).
    saved = sorted(p.name for p in (run_dir / "checkpoints" / "octave2").iterdir())
    assert "step=4.ckpt" in saved and "step=4.ckpt.rank1-of-2" in saved, saved

    refused = run_render(*RESUMABLE, "resume=true", f"hydra.run.dir={run_dir}", check=False)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr[-2000:]
    assert "trainer.devices is 2 there, 1 here" in errors[0]

    run_render(*RESUMABLE, *ddp, "resume=true", f"hydra.run.dir={run_dir}")
    for name in ("render.png", "render_alpha.png"):
        assert (run_dir / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
