"""Sweeps through Hydra's submitit launcher: local processes here, SLURM on a cluster."""

import pytest
from conftest import tiledream
from test_render_cli import TINY

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the cluster extra")


@pytest.mark.slow
def test_a_two_job_sweep_through_submitit_local_leaves_two_pictures(tmp_path):
    tiledream(
        "-m",
        "hydra/launcher=submitit_local",
        *TINY,
        "objective.channel=0,1",
        f"hydra.sweep.dir={tmp_path}",
    )
    pngs = sorted(tmp_path.glob("*/render.png"))
    assert len(pngs) == 2
    assert pngs[0].read_bytes() != pngs[1].read_bytes()
    assert list(tmp_path.glob(".submitit/*/*_result.pkl")), "the jobs ran through submitit"


def test_the_slurm_preset_asks_for_one_gpu_per_job():
    result = tiledream(
        "hydra/launcher=slurm_gpu",
        "hydra.launcher.partition=gpu",
        "--cfg",
        "hydra",
        "--package",
        "hydra.launcher",
    )
    printed = result.stdout
    assert "SlurmLauncher" in printed
    expected = ("gpus_per_node: 1", "partition: gpu", "timeout_min: 120", "tasks_per_node: 1")
    # The stop signal before the time limit, and the requeues that resume (render/stopping.py).
    for line in (*expected, "signal_delay_s: 120", "max_num_timeout: 3"):
        assert line in printed
