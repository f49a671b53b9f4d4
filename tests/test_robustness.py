"""Renders that lose no work, scale past one process, and stop cleanly on bad input."""

import io
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from conftest import DDP, RENDER, ROOT, TINY, run_render, start_render, tiledream
from PIL import Image
from test_ranks import RESUMABLE as RANKS_RESUMABLE

from render.checkpoints import UNREADABLE_SUFFIX
from render.cli import resume_command
from render.models import efficientnet_lite0
from render.objectives import channel
from render.outputs import atomic_path

SMALL = [
    "tiling.base_size=[160,160]",
    "tiling.tile_size=[96,96]",
    "render.tiles_per_step=1",
    "render.blend_every=3",
    "objective.layer=blocks.2.0",
    "objective.channel=3",
    "trainer.accelerator=cpu",
    "seed=1",
]


# An objective that changes across the canvas: channel 3 on the left, channel 4 on the right.
SPATIAL = [
    *(o for o in SMALL if not o.startswith("objective.")),
    "objective=atlas",
    "objective.layer=blocks.2.0",
    "objective.channels=[3,4]",
]
# Two octaves (96 then 160) with checkpoints.
RESUMABLE = ["trainer.max_steps=24", "checkpoint.every_n_steps=4"]


def pixels(png: bytes | Path) -> bytes:
    """The RGB pixels of a PNG file or of its bytes, without its metadata."""
    with Image.open(png if isinstance(png, Path) else io.BytesIO(png)) as image:
        return image.convert("RGB").tobytes()


@pytest.fixture
def whole_render(whole_run) -> Callable[[list[str]], bytes]:
    """render.png of an uninterrupted run of a config (conftest's ``whole_run``)."""
    return lambda config: (whole_run(config) / "render.png").read_bytes()


@pytest.mark.parametrize(
    ("small", "damaged"),
    [
        (SMALL, False),
        (SMALL, True),
        pytest.param(SPATIAL, False, marks=pytest.mark.slow),
    ],
    ids=["intact", "newest damaged", "atlas"],
)
def test_killed_render_resumes_to_the_same_bytes(tmp_path, whole_render, small, damaged):
    # Killed in the second octave, resumed from its checkpoint; with the newest checkpoint
    # truncated, from the one before (in octave 2 or, if it had none, at the end of octave 1).
    run_dir = tmp_path / "killed"
    process = start_render(*small, *RESUMABLE, f"hydra.run.dir={run_dir}")
    checkpoint = run_dir / "checkpoints" / "octave2" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (run_dir / "render.png").exists(), "killed mid-render"
    assert not list(run_dir.glob("checkpoints/.*")), "no half-written checkpoint is left"

    steps = checkpoint.parent.glob("step=*.ckpt")
    newest = max(steps, key=lambda path: int(path.stem.removeprefix("step=")))
    if damaged:
        newest.write_bytes(newest.read_bytes()[:-1000])
    tiledream(*small, *RESUMABLE, "resume=true", f"hydra.run.dir={run_dir}")
    assert (run_dir / "render.png").read_bytes() == whole_render([*small, *RESUMABLE])
    log = (run_dir / "render.log").read_text()
    assert (f"{newest} is unreadable" in log) == damaged
    assert newest.with_name(newest.name + UNREADABLE_SUFFIX).exists() == damaged


# The stop line, for a signal's name and what follows the checkpoint.
STOP_LINE = (
    r"stopped by {} at step (\d+) of octave 2/2: checkpoint saved \((.+)\){}; resume with: (.+)"
)
# The progress bar (stdout) counts the octave's steps: "octave 2/2:  25%|##    | 2/8 [...".
OCTAVE_2_STEPS = re.compile(r"octave 2/2: +\d+%\|[^|]*\| (\d+)/")


def signal_in_octave_2(
    config: list[str],
    run_dir: Path,
    rank_1: bool = False,
    sig: signal.Signals = signal.SIGTERM,
    env: dict[str, str] | None = None,
):
    """Run a render, send ``sig`` once its second octave has taken 2 steps (to rank 1 alone
    with ``rank_1``); its exit status, stderr and the seconds from the signal to its exit.
    """
    out, err = run_dir.with_suffix(".out"), run_dir.with_suffix(".err")
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, RENDER, *config, f"hydra.run.dir={run_dir}"],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 300
        while max(map(int, OCTAVE_2_STEPS.findall(out.read_text(errors="replace"))), default=0) < 2:
            assert process.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        target = psutil.Process(process.pid)
        if rank_1:  # Lightning's launcher started rank 1 as a child of this process
            (target,) = target.children()
        target.send_signal(sig)
        sent = time.monotonic()
        process.wait(timeout=120)
        return process.returncode, err.read_text(), time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def check_stopped(
    run_dir: Path, status: int, stderr: str, sig: signal.Signals = signal.SIGTERM, then: str = ""
) -> str:
    """Assert a render stopped by ``sig`` in octave 2 as it should (``then``: what the line
    says after the checkpoint); the resume command.
    """
    assert status == 128 + sig, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = [line for line in re.split(r"[\r\n]", stderr) if line.startswith("stopped by")]
    assert len(lines) == 1, stderr[-3000:]
    match = re.fullmatch(STOP_LINE.format(sig.name, re.escape(then)), lines[0])
    assert match, lines[0]
    step, checkpoint, command = int(match[1]), Path(match[2]), match[3]
    folder = run_dir / "checkpoints" / "octave2"
    assert checkpoint == folder / f"step={step}.ckpt"
    # The progress bar showed step 2 after that step's check: the stop came at a later step,
    # newer than any periodic checkpoint.
    saved = [int(path.stem.removeprefix("step=")) for path in folder.glob("step=*.ckpt")]
    assert step > 2 and max(saved) == step
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] == step
    assert not list(run_dir.glob("render*.png")), "a stopped render writes no picture"
    return command


def resume_as_told(command: str, run_dir: Path, process: bool = False) -> None:
    """Run the resume command of a stop line (its ``python`` is this interpreter; in this
    process unless ``process``: one of more ranks)."""
    args = shlex.split(command)
    assert args[:2] == ["python", RENDER]
    assert args[-2:] == ["resume=true", f"hydra.run.dir={run_dir}"]
    (run_render if process else tiledream)(*args[2:])


@pytest.mark.parametrize(
    "every", [4, pytest.param(0, marks=pytest.mark.slow)], ids=["checkpoints", "checkpoints off"]
)
def test_sigterm_saves_the_current_step_and_the_resumed_render_is_the_same(
    tmp_path, whole_render, every
):
    # The kill -9 test's render (its uninterrupted picture is rendered once for both).
    run_dir = tmp_path / "stopped"
    steps = [o for o in RESUMABLE if not o.startswith("checkpoint.")]
    config = [*SMALL, *steps, f"checkpoint.every_n_steps={every}"]
    status, stderr, seconds = signal_in_octave_2(config, run_dir)
    command = check_stopped(run_dir, status, stderr)
    assert seconds < 15  # about 2 s: the step, the checkpoint and the interpreter's exit
    assert command.split()[2:-2] == [shlex.quote(o) for o in config]
    resume_as_told(command, run_dir)
    # The pixels: the recipe in the file names checkpoint.every_n_steps, which differs.
    assert pixels(run_dir / "render.png") == pixels(whole_render([*SMALL, *RESUMABLE]))


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_every_rank_at_one_step(tmp_path, whole_render):
    # Two gloo processes; the signal reaches rank 1 alone (as one rank can miss it or see it a
    # step later): the ranks agree at the next step, save together and resume to the picture
    # of an uninterrupted two-process render (test_ranks' render of the same config).
    run_dir = tmp_path / "stopped"
    config = [*RANKS_RESUMABLE, *DDP]
    status, stderr, _ = signal_in_octave_2(config, run_dir, rank_1=True)
    command = check_stopped(run_dir, status, stderr)
    assert "received SIGTERM" in (run_dir / "train_ddp_process_1.log").read_text()
    assert "received SIGTERM" not in (run_dir / "render.log").read_text()
    resume_as_told(command, run_dir, process=True)
    assert (run_dir / "render.png").read_bytes() == whole_render(config)


def test_the_resume_command_sets_resume_and_quotes_for_the_shell(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/tiledream", "ignored"])
    overrides = ["resume=false", "tiling.base_size=[64,64]", "+trainer.profiler=simple"]
    assert resume_command(overrides, Path("/runs/a poster")) == (
        "tiledream 'tiling.base_size=[64,64]' +trainer.profiler=simple resume=true "
        "'hydra.run.dir=/runs/a poster'"
    )


@pytest.mark.slow
def test_slurms_warning_signal_saves_requeues_the_job_and_the_requeued_job_resumes(tmp_path):
    # Lightning's SLURMEnvironment: SIGUSR1 (sbatch --signal=USR1@90) asks for a requeue.
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    scontrol.chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "poster", "SLURM_JOB_ID": "4242"}
    slurm |= {"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    path = {"PATH": f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}"}
    run_dir = tmp_path / "stopped"
    config = [o for o in TINY if not o.startswith("trainer.max_steps")] + ["trainer.max_steps=8"]
    result = signal_in_octave_2(config, run_dir, sig=signal.SIGUSR1, env={**slurm, **path})
    check_stopped(run_dir, *result[:2], sig=signal.SIGUSR1, then="; SLURM job 4242 requeued")
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    # The requeued job runs the same command again: it continues from the checkpoint.
    saved = max((run_dir / "checkpoints" / "octave2").glob("step=*.ckpt"))
    subprocess.run(
        [sys.executable, RENDER, *config, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env={**os.environ, **slurm, "SLURM_RESTART_COUNT": "1"},
        check=True,
        timeout=600,
    )
    assert f"continuing octave 2 from {saved}" in (run_dir / "render.log").read_text()
    assert (run_dir / "render.png").is_file()


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    tiledream(*SMALL, "trainer.max_steps=2", "resume=true", f"hydra.run.dir={tmp_path}")
    assert (tmp_path / "render.png").is_file()


def test_atomic_writes_leave_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "render.png"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_a_non_finite_render_stops_with_a_message_and_no_image(tmp_path):
    result = tiledream(
        *SMALL,
        "trainer.max_steps=4",
        "param.init_std=1e38",
        f"hydra.run.dir={tmp_path}",
        check=False,
    )
    assert result.returncode == 2
    assert "non-finite" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "render.png").exists()


def test_a_canvas_too_large_for_memory_is_refused_before_allocating(tmp_path):
    result = tiledream(
        *SMALL, "tiling.base_size=[200000,200000]", f"hydra.run.dir={tmp_path}", check=False
    )
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "GiB" in error[0] and "tiling.base_size" in error[0]


@torch.no_grad()
def channel_score(png: Path) -> float:
    """The rendered channel's mean activation over the whole picture."""
    with Image.open(png) as picture:
        image = TF.to_dtype(TF.to_image(picture.convert("RGB")), torch.float32, scale=True)
    objective = channel("blocks.2.0", 3)
    model = efficientnet_lite0()
    return objective(model.capture(image[None], ["blocks.2.0"]), image[None]).item()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_renders_as_well_as_one(tmp_path):
    # 9 tiles over 2 ranks: shards of 5 and 4 that step in lockstep (batches 2+2+1, 2+1+1).
    config = [o for o in SMALL if not o.startswith(("tiling.tile_size", "render.tiles_per"))]
    config += ["tiling.tile_size=[64,64]", "render.tiles_per_step=2"]
    tiledream(*config, "trainer.max_steps=18", f"hydra.run.dir={tmp_path / 'one'}")
    run_render(
        *config,
        "trainer.max_steps=18",
        *DDP,
        f"hydra.run.dir={tmp_path / 'ddp'}",
    )
    tiledream(*config, "trainer.max_steps=0", f"hydra.run.dir={tmp_path / 'start'}")
    start = channel_score(tmp_path / "start" / "render.png")
    one = channel_score(tmp_path / "one" / "render.png")
    ddp = channel_score(tmp_path / "ddp" / "render.png")
    assert one > start + 0.5
    # Each rank optimised its own half of the tiles, and rank 0 wrote all of them.
    assert ddp > start + 0.5 and ddp > 0.7 * one
    assert len(list((tmp_path / "ddp").glob("render*.png"))) == 2


def peak_rss(*overrides: str) -> int:
    """Peak resident memory (bytes) of a render of ``overrides``, measured by a parent process
    that starts nothing else."""
    measure = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [sys.executable, RENDER, *overrides, "trainer.max_steps=2", "trainer.accelerator=cpu"]
    result = subprocess.run(
        [sys.executable, "-c", measure, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return int(result.stdout.split()[-1]) * 1024


@pytest.mark.slow
def test_a_4096_canvas_stays_within_its_memory_budget(tmp_path):
    """625 tiles of 224: the canvas costs at most 60 bytes per pixel above a 448x448 render's
    peak (documented: about 46; Python, PyTorch and the model, the rest, vary by machine)."""
    small = peak_rss("tiling.base_size=[448,448]", f"hydra.run.dir={tmp_path / 'small'}")
    large = peak_rss("tiling.base_size=[4096,4096]", f"hydra.run.dir={tmp_path / 'large'}")
    per_pixel = (large - small) / (4096 * 4096 - 448 * 448)
    assert per_pixel < 60, (
        f"{per_pixel:.1f} bytes per pixel ({small / 1e9:.2f} GB, {large / 1e9:.2f} GB)"
    )
    with Image.open(tmp_path / "large" / "render.png") as png:
        assert png.size == (4096, 4096)
