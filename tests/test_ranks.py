"""Multi-process renders (two CPU processes, gloo) that cannot hang when one process fails."""

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DDP, RENDER, ROOT, kill_two_ranks_in_octave2, run_render, tiledream
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


# Two octaves (64 then 160) with a checkpoint every 4 steps. No trainer.max_steps: each octave
# gives every tile the same number of updates on any number of ranks (3 tiles of a rank's shard
# of 5 or 4: batches of 2 and 1 or 2 and 2).
RESUMABLE = [
    "tiling.base_size=[160,160]",
    "tiling.tile_size=[64,64]",
    "render.tiles_per_step=2",
    "render.blend_every=1",
    "render.octaves=2",
    "render.updates_per_tile=4",
    "objective.layer=blocks.2.0",
    "objective.channel=3",
    "trainer.accelerator=cpu",
    "checkpoint.every_n_steps=4",
    # The transparency map: each rank accumulates its own tiles', saved with them and blended
    # in the writing.
    "output.alpha=true",
]


def pictures_of(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The RGB render and the transparency map of a finished run."""
    with Image.open(run_dir / "render.png") as png, Image.open(run_dir / "render_alpha.png") as a:
        return np.asarray(png.convert("RGB")), np.asarray(a)


@pytest.mark.slow
def test_two_processes_render_as_one_and_a_killed_pair_resumes_to_the_same_picture(
    tmp_path, whole_run
):
    tiledream(*RESUMABLE, f"hydra.run.dir={tmp_path / 'one'}")
    whole = whole_run([*RESUMABLE, *DDP])  # starts rank 1 (test_robustness reads it too)
    (one, alpha_one), (two, alpha_two) = pictures_of(tmp_path / "one"), pictures_of(whole)
    assert psnr(one, two) > 40, f"PSNR {psnr(one, two):.1f} dB"
    assert psnr(alpha_one, alpha_two) > 30, f"alpha PSNR {psnr(alpha_one, alpha_two):.1f} dB"
    assert alpha_one.std() > 10
    # A picture, not a flat canvas on which any two renders would agree.
    assert one.std() > 8  # the starting noise: below 1

    run_dir = tmp_path / "killed"
    kill_two_ranks_in_octave2(run_dir, *RESUMABLE, *DDP)
    # Each rank saved its own tiles: rank 1's file beside Lightning's (rank 0's).
    saved = sorted(p.name for p in (run_dir / "checkpoints" / "octave2").iterdir())
    assert "step=4.ckpt" in saved and "step=4.ckpt.rank1-of-2" in saved, saved

    refused = tiledream(*RESUMABLE, "resume=true", f"hydra.run.dir={run_dir}", check=False)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr[-2000:]
    assert "trainer.devices is 2 there, 1 here" in errors[0]

    run_render(*RESUMABLE, *DDP, "resume=true", f"hydra.run.dir={run_dir}")
    for name in ("render.png", "render_alpha.png"):
        assert (run_dir / name).read_bytes() == (whole / name).read_bytes(), name
