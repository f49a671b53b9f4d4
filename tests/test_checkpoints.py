"""Checkpoints you can trust: resume=true with a changed config, damaged files, two renders in
one run directory; end to end through the real command line, and the parts on their own."""

import fcntl
import logging
import os
import pickle
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY, made_once, run_render, start_render, tiledream
from omegaconf import OmegaConf

from render.checkpoints import (
    CONFIG_KEY,
    SHARDS_KEY,
    UNREADABLE_SUFFIX,
    Resume,
    check_resume,
    find_resume,
    saved_world,
    shard_file,
)
from render.errors import UserError
from render.renderer import CONTEXT_KEY
from render.rundir import LOCK_NAME, RunLockCallback, run_lock
from render.strategy import TileDDPStrategy

# Two octaves (64, then 112 of 4 tiles), a checkpoint every 2 of 4 steps in each.
CHECKPOINTED = [*TINY, "checkpoint.every_n_steps=2"]


@pytest.fixture(scope="module")
def finished(request):
    """A render that ran to its end, with its checkpoints (made once; tests change a copy)."""
    return made_once(
        request,
        "finished",
        lambda run_dir: tiledream(*CHECKPOINTED, f"hydra.run.dir={run_dir}"),
    )


@pytest.fixture
def run_dir(finished, tmp_path):
    """A copy of the finished render's folder, without its picture."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy, symlinks=True)
    (copy / "render.png").unlink()
    return copy


def one_error(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a run that failed as a user's mistake should."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_checkpoints_keep_the_newest_and_link_the_last(finished):
    octave2 = finished / "checkpoints" / "octave2"
    assert sorted(p.name for p in octave2.iterdir()) == ["last.ckpt", "step=2.ckpt", "step=4.ckpt"]
    assert (octave2 / "last.ckpt").resolve() == octave2 / "step=4.ckpt"
    saved = torch.load(octave2 / "step=4.ckpt", map_location="cpu", weights_only=True)
    assert saved["render_config"]["tiling.base_size"] == [112, 112]
    assert saved["render_config"]["objective layers"] == ["blocks.2.0"]


def test_checkpoints_of_octaves_with_context_views_hold_the_thumbnail(finished):
    # Octave 2 (112) scores context views at octave 1's size (64): a resume needs the
    # thumbnail of the last blend, which a checkpoint between blends cannot rebuild.
    root = finished / "checkpoints"
    first = torch.load(root / "octave1" / "step=4.ckpt", map_location="cpu", weights_only=True)
    second = torch.load(root / "octave2" / "step=2.ckpt", map_location="cpu", weights_only=True)
    assert CONTEXT_KEY not in first
    assert [t.shape for t in second[CONTEXT_KEY]] == [(1, 3, 64, 64)]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        # The same 4 tiles at other places: the silently wrong picture of the issue.
        (["tiling.base_size=[100,100]"], "tiling.base_size is [112, 112] there, [100, 100] here"),
        (
            ["param=pixel"],
            "param._target_ is 'render.params.FourierParam' there, "
            "'render.params.PixelParam' here; param.decay is 1.0 there, unset here",
        ),
        (["objective.layer=blocks.3.0"], "objective layers is ['blocks.2.0'] there"),
    ],
    ids=["geometry", "parameterisation", "layers"],
)
def test_resuming_another_canvas_is_refused_naming_each_difference(run_dir, change, named):
    result = tiledream(
        *CHECKPOINTED, *change, "resume=true", f"hydra.run.dir={run_dir}", check=False
    )
    error = one_error(result)
    assert "octave2/step=4.ckpt is a checkpoint of another canvas" in error
    assert named in error
    assert not (run_dir / "render.png").exists()


def test_safe_changes_are_logged_and_the_render_goes_on(run_dir):
    changed = [o for o in CHECKPOINTED if not o.startswith("trainer.max_steps")]
    tiledream(
        *changed,
        "trainer.max_steps=6",
        "optim.lr=0.04",
        "resume=true",
        f"hydra.run.dir={run_dir}",
    )
    log = (run_dir / "render.log").read_text()
    assert "with changes: optim.lr 0.05 -> 0.04; trainer.max_steps 4 -> 6" in log
    assert "continuing octave 2 from" in log
    assert (run_dir / "checkpoints" / "octave2" / "step=6.ckpt").is_file()
    assert (run_dir / "render.png").is_file()


def test_no_readable_checkpoint_is_one_line_naming_each_file(run_dir):
    root = run_dir / "checkpoints"
    (root / "octave2" / "step=4.ckpt").write_bytes(b"garbage" * 100)
    data = (root / "octave2" / "step=2.ckpt").read_bytes()
    (root / "octave2" / "step=2.ckpt").write_bytes(data[: len(data) // 2])  # a full disk
    for path in (root / "octave1").glob("step=*.ckpt"):
        torch.save({"state_dict": {}}, path)  # another program's checkpoint
    result = tiledream(*CHECKPOINTED, "resume=true", f"hydra.run.dir={run_dir}", check=False)
    error = one_error(result)
    assert error.startswith(f"error: resume=true: no checkpoint in {root} is readable: ")
    assert f"{root}/octave2/step=4.ckpt (not a whole checkpoint" in error
    assert f"{root}/octave2/step=2.ckpt (not a whole checkpoint" in error
    assert f"{root}/octave1/step=4.ckpt (incomplete: it lacks render_config, tile_store" in error
    assert f"{root}/octave1/step=2.ckpt (incomplete" in error
    assert not list(root.glob(f"*/*{UNREADABLE_SUFFIX}")), "nothing is set aside"


@pytest.mark.slow
def test_a_second_render_in_a_run_directory_is_refused_until_the_first_ends(tmp_path):
    first = start_render(*TINY, "trainer.max_steps=10000", f"hydra.run.dir={tmp_path}")
    record = tmp_path / ".hydra"
    try:
        lock, log = tmp_path / LOCK_NAME, tmp_path / "render.log"
        deadline = time.monotonic() + 300
        while first.poll() is None and time.monotonic() < deadline:
            # The lock comes first, then Hydra saves the config; the render's first log line
            # comes after (an overrides.yaml that exists may not have been written yet).
            locked = lock.is_file() and lock.read_text().strip() == str(first.pid)
            if locked and log.is_file() and log.stat().st_size > 0:
                break
            time.sleep(0.05)
        saved = {path.name: path.read_bytes() for path in record.iterdir()}
        result = tiledream(*TINY, "seed=7", f"hydra.run.dir={tmp_path}", check=False)
        error = one_error(result)
        assert error == (
            f"error: {tmp_path} is in use by another render (process {first.pid}); wait for "
            f"it to end, or give this one another hydra.run.dir"
        )
        # Refused before Hydra wrote anything there: the running render keeps its record.
        assert {path.name: path.read_bytes() for path in record.iterdir()} == saved
        assert "max_steps: 10000" in saved["config.yaml"].decode()
        assert "in use by another render" not in log.read_text()
    finally:
        first.kill()  # SIGKILL: the kernel releases the lock
        first.wait()
    tiledream(*TINY, "trainer.max_steps=1", f"hydra.run.dir={tmp_path}")
    assert (tmp_path / "render.png").is_file()
    assert "max_steps: 1\n" in (record / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("where", "option"), [([], "hydra.run.dir"), (["-m", "seed=0,1"], "hydra.sweep.dir")]
)
def test_a_refused_render_or_sweep_writes_nothing_where_another_one_runs(tmp_path, where, option):
    record = tmp_path / ".hydra"
    record.mkdir()
    (record / "config.yaml").write_text("the running render's config\n")
    # Held by this process: another render for the command below (a process of its own, as a
    # process already holds the locks it takes).
    with run_lock(tmp_path):
        result = run_render(*where, *TINY, f"{option}={tmp_path}", check=False)
    assert one_error(result) == (
        f"error: {tmp_path} is in use by another render (process {os.getpid()}); wait for it "
        f"to end, or give this one another {option}"
    )
    # Refused before Hydra wrote anything: no .hydra/ files, render.log, multirun.yaml or jobs.
    assert sorted(path.name for path in tmp_path.iterdir()) == [".hydra", LOCK_NAME]
    assert [path.name for path in record.iterdir()] == ["config.yaml"]
    assert (record / "config.yaml").read_text() == "the running render's config\n"


def test_a_fresh_render_over_earlier_checkpoints_is_refused(run_dir):
    # Forgetting resume=true would otherwise start over and mix two renders' checkpoints.
    error = one_error(tiledream(*CHECKPOINTED, f"hydra.run.dir={run_dir}", check=False))
    assert error == (
        f"error: {run_dir / 'checkpoints'} holds the checkpoints of an earlier render; add "
        f"resume=true to continue it, or give another hydra.run.dir (or delete that folder) "
        f"to start afresh"
    )


def test_the_lock_is_held_for_the_body_only_and_is_the_holders_own(tmp_path):
    def locked_for_others() -> bool:
        # flock refuses another open file of the lock, as it refuses another process.
        with (tmp_path / LOCK_NAME).open("a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False

    with run_lock(tmp_path):
        # The command line's callback takes the lock; the render inside it finds it its own.
        with run_lock(tmp_path):
            assert locked_for_others()
        assert locked_for_others()
    assert not locked_for_others()
    with (tmp_path / LOCK_NAME).open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="in use by another render"), run_lock(tmp_path):
            pass


def test_the_lock_callback_holds_the_run_directory_and_travels_to_jobs_without_it(tmp_path):
    config = OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path)}}})
    callback = RunLockCallback()
    callback.on_run_start(config=config)
    assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    # submitit pickles the callbacks into every job of a sweep: the lock stays here.
    assert isinstance(pickle.loads(pickle.dumps(callback)), RunLockCallback)
    callback.on_run_end(config=config)
    with (tmp_path / LOCK_NAME).open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released


def fake_checkpoint(path, step):
    """A file with what a render's checkpoint holds, its tiles large enough to damage."""
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {CONFIG_KEY: {"seed": 0}, "tile_store": {"params": torch.zeros(4096)}, "loops": {}}
    torch.save({**config, "step": step}, path)


def test_the_newest_intact_checkpoint_is_found_and_damaged_ones_set_aside(tmp_path):
    root = tmp_path / "checkpoints"
    for octave, step in ((1, 8), (2, 2), (2, 4), (2, 10)):
        fake_checkpoint(root / f"octave{octave}" / f"step={step}.ckpt", step)
    (root / "octave2" / "last.ckpt").symlink_to("step=10.ckpt")
    newest = root / "octave2" / "step=10.ckpt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tiles
    newest.write_bytes(data)

    found = find_resume(root)
    assert (found.octave, found.path.name) == (1, "step=4.ckpt")
    assert found.config == {"seed": 0}
    assert not newest.exists()
    assert newest.with_name("step=10.ckpt" + UNREADABLE_SUFFIX).exists()
    assert find_resume(tmp_path / "none") is None


def test_a_checkpoint_of_two_processes_is_whole_only_with_each_ranks_file(tmp_path):
    root = tmp_path / "checkpoints"
    older, newer = root / "step=4.ckpt", root / "step=8.ckpt"
    for path in (older, newer):
        fake_checkpoint(path, int(path.stem[5:]))
        torch.save({**torch.load(path), SHARDS_KEY: 2}, path)
    fake_checkpoint(shard_file(older, 1, 2), 4)
    assert (
        shard_file(older, 0, 2) == older
        and shard_file(older, 1, 2).name == "step=4.ckpt.rank1-of-2"
    )
    assert saved_world(newer) == 2

    found = find_resume(root)  # step=8's rank 1 never wrote its file (killed while saving)
    assert found.path == older
    assert newer.with_name("step=8.ckpt" + UNREADABLE_SUFFIX).exists()


def test_a_checkpoint_of_two_processes_is_refused_by_one_in_one_line(tmp_path):
    # What torchrun or srun with another process count meets (the config is unchanged).
    path = tmp_path / "step=4.ckpt"
    fake_checkpoint(path, 4)
    torch.save({**torch.load(path), SHARDS_KEY: 2}, path)
    strategy = TileDDPStrategy()
    assert strategy.world_size == 1
    with pytest.raises(
        UserError, match=r"saved by 2 process\(es\).* this render has 1; resume with 2"
    ):
        strategy.load_checkpoint(path)


def test_canvas_changes_are_refused_and_other_changes_logged(caplog):
    saved = {"seed": 0, "tiling.tile_size": [64, 64], "optim.lr": 0.05, "objective.channel": 3}
    resume = Resume(0, Path("step=2.ckpt"), {**saved, "resume": False})
    with caplog.at_level(logging.WARNING, logger="render.checkpoints"):
        check_resume(resume, {**saved, "optim.lr": 0.1, "objective.channel": 4, "resume": True})
    assert caplog.messages == [
        "resuming step=2.ckpt with changes: objective.channel 3 -> 4; optim.lr 0.05 -> 0.1"
    ]
    canvas = {**saved, "seed": 1, "tiling.tile_size": [96, 96], "optim.lr": 0.1}
    refused = r"seed is 0 there, 1 here; tiling.tile_size is \[64, 64\] there, \[96, 96\] here; r"
    with pytest.raises(UserError, match=refused):
        check_resume(resume, canvas)
