"""Helpers shared by the tests: the real command line and a tiny render for it, what several
tests read made once, and a bare Trainer for a renderer."""

import contextlib
import fcntl
import hashlib
import importlib.util
import io
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from render import cli
from render.config import compose_with_choices
from render.recipe import Launch, Recipe, Weights

# Under pytest-xdist (`make test`: -n auto) each worker gets its share of the cores for torch's
# threads, in its own process and in the renders it starts (they inherit OMP_NUM_THREADS): two
# workers of two threads each on two cores would oversubscribe them.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, each group in its order: as ``make test`` hands each worker the
    next test when it is done (``--maxschedchunk 1``), the slow ones start first and the fast
    ones fill in at the end, so both workers end together instead of one starting a render of
    minutes while the other has nothing left."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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

#: A render on two gloo processes (Lightning starts the second with the command line).
DDP = ["trainer.devices=2", "trainer.strategy=ddp"]

#: A dreamed video (``init=video``, ``init.path`` to add) on a small canvas: tiles of 64.
VIDEO = [
    "experiment=deepdream_photo",
    "init=video",
    "tiling.tile_size=[64,64]",
    "render.octaves=2",
    "video.updates_per_frame=4",
    "trainer.accelerator=cpu",
]


def a_recipe(*overrides: str) -> Recipe:
    """The recipe a render of ``tiledream OVERRIDES...`` records (with no weight file)."""
    cfg, choices = compose_with_choices(overrides)
    launch = Launch(program=("tiledream",), overrides=overrides, choices=choices)
    return Recipe.make(cfg, launch, Weights("efficientnet_lite0", None, None))


def assert_a_picture(path: Path, size: tuple[int, int]) -> None:
    """``path`` is a picture of ``size`` (width, height) with more than 100 colours: a
    picture, not a flat colour."""
    with Image.open(path) as png:
        assert png.size == size, path
        assert len(png.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 100, (
            f"{path}: a flat colour, not a picture"
        )


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` as a module, to call its ``main`` in this process (a new interpreter
    spends seconds importing torch); what the script puts on ``sys.path`` is put back."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


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


def tiledream(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python scripts/render.py ARGS...`` (``plan``, ``info``, ``replay`` or a render) by its
    entry point, ``render.cli.main``, in this process: the same command line and argv as
    :func:`run_render` without a new interpreter's imports of torch and Lightning (about 8 s of
    CPU each). For what a command writes, says or refuses; what needs a process of its own (a
    signal, a kill, more ranks, its memory, its imports) uses :func:`run_render`.

    What a render changes in this process is put back: the environment, the log handlers
    Hydra adds and the random generators.
    """
    out, err = io.StringIO(), io.StringIO()
    environ, argv, root = dict(os.environ), sys.argv, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()
    sys.argv = [RENDER, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                status = 0
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
        for handler in set(root.handlers) - set(handlers):
            handler.close()
        root.handlers[:], root.level = handlers, level
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])
    done = subprocess.CompletedProcess([RENDER, *args], status, out.getvalue(), err.getvalue())
    assert not check or status == 0, done.stderr[-4000:]
    return done


def made_once(request: pytest.FixtureRequest, name: str, make: Callable[[Path], object]) -> Path:
    """The folder ``name`` as ``make(folder)`` left it, made once in a test session (``request``:
    the asking fixture's): under pytest-xdist the first worker to ask makes it while the others
    wait for it (xdist's pattern for a fixture run once). Its readers change nothing in it.
    """
    base = request.getfixturevalue("tmp_path_factory").getbasetemp()
    if hasattr(request.config, "workerinput"):  # a pytest-xdist worker
        base = base.parent  # the session's folder; each worker's own is in it
    folder, done = base / name, base / f"{name}.done"
    with (base / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed attempt left
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def whole_run(request: pytest.FixtureRequest) -> Callable[[list[str]], Path]:
    """The run folder of an uninterrupted render of a config, rendered once per config in a
    test session (in the asking process unless it starts more ranks), for the tests that
    compare a stopped and resumed render with it."""

    def whole(config: list[str]) -> Path:
        name = "whole-" + hashlib.sha256(" ".join(config).encode()).hexdigest()[:16]
        run = run_render if set(DDP) <= set(config) else tiledream
        return made_once(request, name, lambda run_dir: run(*config, f"hydra.run.dir={run_dir}"))

    return whole


@pytest.fixture(scope="session")
def tiny_run(request: pytest.FixtureRequest) -> Path:
    """The run folder of the TINY render, made once for the tests that read it; its stdout
    beside it (``tiny.out``)."""

    def render(run_dir: Path) -> None:
        done = run_render(*TINY, f"hydra.run.dir={run_dir}")
        run_dir.with_suffix(".out").write_text(done.stdout)

    return made_once(request, "tiny", render)


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


def kill_two_ranks_in_octave2(run_dir: Path, *overrides: str) -> None:
    """Start a two-process render of ``overrides`` in ``run_dir`` and ``kill -9`` it once both
    ranks have saved a checkpoint of its second octave."""
    # Its own session: kill -9 reaches the launcher and the process it started.
    process = start_render(*overrides, f"hydra.run.dir={run_dir}", session=True)
    octave2 = run_dir / "checkpoints" / "octave2"

    def saved_by_both() -> bool:
        # Each rank writes its own file, in either order.
        return any(
            path.with_name(path.name.removesuffix(".rank1-of-2")).exists()
            for path in octave2.glob("step=*.ckpt.rank1-of-2")
        )

    deadline = time.monotonic() + 300
    while not saved_by_both() and time.monotonic() < deadline:
        assert process.poll() is None, "the render ended before its second octave's checkpoint"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run_dir / "render.png").exists(), "killed mid-render"


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
