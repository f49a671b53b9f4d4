"""Multi-process renders (two CPU processes, gloo) that cannot hang when one process fails."""

import os
import subprocess
import sys
import time

import pytest
from conftest import RENDER, ROOT

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
