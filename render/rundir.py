"""The run directory: one render at a time writes into it, and one process of a render owns it."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from lightning_utilities.core.rank_zero import rank_zero_only
from omegaconf import DictConfig

from render.errors import UserError

#: The lock file of a run directory; it holds the owner's process id.
LOCK_NAME = "render.lock"

#: The launchers' rank variables, in the order Lightning reads them (lightning_fabric's
#: ``_get_rank``): read here without importing torch, as Hydra's callbacks run before a render
#: checks its values.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")

#: The run directories whose lock this process holds (resolved paths).
_held: set[Path] = set()


def owns_run_dir() -> bool:
    """Whether this process is rank 0 of its render (or the only process).

    The ranks of a multi-process render share one run directory; rank 0 locks it and writes
    the outputs. The rank comes from the launcher's environment (torchrun, SLURM, Lightning),
    read before torch.distributed starts.
    """
    # Lightning sets .rank on the function when it is imported (and its strategies when they
    # start); its type does not declare it.
    rank = getattr(rank_zero_only, "rank", None)
    if rank is None:
        rank = next((int(os.environ[k]) for k in RANK_VARIABLES if k in os.environ), 0)
    return rank == 0 and os.environ.get("NODE_RANK", "0") == "0"


@contextmanager
def run_lock(run_dir: Path, option: str = "hydra.run.dir") -> Iterator[None]:
    """Hold ``run_dir``'s lock while the body runs; UserError if another render holds it (the
    message suggests another ``option``).

    An ``flock``: the kernel releases it when its process ends, even by ``kill -9``, so a
    killed render leaves nothing to clean up. The file stays, with the last owner's id. Inside
    a lock this process holds (the command line's :class:`RunLockCallback`), it holds it already.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    if key in _held:
        yield
        return
    path = run_dir / LOCK_NAME
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            raise UserError(
                f"{run_dir} is in use by another render (process {owner}); wait for it to "
                f"end, or give this one another {option}"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)


class RunLockCallback(Callback):
    """Hydra callback (in render.yaml): the run directory of a render, or the folder of a sweep,
    is locked before Hydra writes into it, so that a second render or sweep refused there
    leaves the first's record (``.hydra/``, ``render.log``, ``multirun.yaml``) alone.

    Hydra saves a run's config before ``on_job_start``; ``on_run_start`` comes before that, as
    ``on_multirun_start`` comes before the sweeper writes. Only the process that owns the run
    directory locks it (the other ranks of a DDP render share it); the render then finds the
    lock its own. The jobs of a sweep lock their own directories when they render.
    """

    def __init__(self) -> None:
        self._locks = ExitStack()

    def __reduce__(self) -> tuple[type, tuple[()]]:
        # A launcher may pickle the callbacks into its jobs (submitit): each job gets a callback
        # of its own, and the lock stays with the process that holds it.
        return (RunLockCallback, ())

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._lock(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._lock(Path(config.hydra.sweep.dir), "hydra.sweep.dir")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._locks.close()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._locks.close()

    def _lock(self, folder: Path, option: str) -> None:
        if not owns_run_dir():
            return
        try:
            self._locks.enter_context(run_lock(folder, option))
        except UserError as error:
            # Raised, Hydra would print a traceback and exit 1: a mistake is one line, exit 2
            # (as render.cli reports a render's own).
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
