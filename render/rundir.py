"""The run directory: one render at a time writes into it, and one process of a render owns it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytorch_lightning.utilities.rank_zero import rank_zero_only

from render.errors import UserError

#: The lock file of a run directory; it holds the owner's process id.
LOCK_NAME = "render.lock"


def owns_run_dir() -> bool:
    """Whether this process is rank 0 of its render (or the only process).

    The ranks of a multi-process render share one run directory; rank 0 locks it and writes
    the outputs. The rank comes from the launcher's environment (torchrun, SLURM, Lightning),
    read before torch.distributed starts.
    """
    # Lightning sets .rank on the function when it is imported; its type does not declare it.
    rank = rank_zero_only.rank  # type: ignore[attr-defined]
    return rank == 0 and os.environ.get("NODE_RANK", "0") == "0"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the body runs; UserError if another render holds it.

    An ``flock``: the kernel releases it when its process ends, even by ``kill -9``, so a
    killed render leaves nothing to clean up. The file stays, with the last owner's id.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            raise UserError(
                f"{run_dir} is in use by another render (process {owner}); wait for it to "
                f"end, or give this one another hydra.run.dir"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield
