"""Stopped, not lost: SIGTERM (and SLURM's warning signal) save a checkpoint at the current step
on every rank, then the render ends with :class:`render.errors.RenderStopped`, which says how to
resume.

The signal handler only records the signal; the ranks agree at a step boundary (the end of a
training step) on whether any of them received one, so every rank saves at the same step through
``trainer.save_checkpoint`` (the strategy and the module's ``on_save_checkpoint``).

Lightning's own SIGTERM handling is switched off for a render's Trainers (see
:func:`without_lightning_signals`): it ends the fit with ``SIGTERMException``, a ``SystemExit``
without a status (the process exits 0, as if the render had finished), saves nothing, and with
several processes it broadcasts from inside the signal handler, out of step with the other
ranks' collectives.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.trainer.connectors.signal_connector import _SignalConnector

from render.errors import RenderStopped
from render.peers import distributed, peers_alive

log = logging.getLogger(__name__)

__all__ = [
    "StopOnSignal",
    "StopRequest",
    "requeued",
    "stop_signals",
    "without_lightning_signals",
]

#: SLURM's warning signal as Lightning's SLURMEnvironment expects it (``--signal=USR1@90``).
SLURM_WARNING = signal.SIGUSR1


class StopRequest:
    """The signal a process received (0: none yet), set by the handlers of :func:`stop_signals`."""

    def __init__(self) -> None:
        """No signal yet."""
        self.signum = 0

    def receive(self, signum: int, _: Any) -> None:
        """A signal handler: record the first stop signal; the render stops at the next step."""
        if not self.signum:
            self.signum = signum
            log.info("received %s: stopping after this step", signal.Signals(signum).name)


def _signals() -> set[signal.Signals]:
    """SIGTERM; under SLURM its warning signal as Lightning's SLURMEnvironment expects it
    (SIGUSR1), and in a submitit job (the ``slurm_gpu`` launcher) submitit's (SIGUSR2).
    """
    signals = {signal.SIGTERM}
    if SLURMEnvironment.detect():
        signals.add(SLURM_WARNING)
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        # submitit's own handler, which requeues the job, is handed the signal after the stop.
        signals.add(signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"])
    return signals


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """While the body runs, the stop signals are recorded in the yielded request instead of
    ending the process; the previous handlers come back afterwards.

    Outside the main thread (where Python cannot handle signals) nothing is installed.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.signal(signum, request.receive) for signum in _signals()}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _NoSignalHandlers(_SignalConnector):
    """Lightning's signal connector without its handlers (see the module's docstring)."""

    def register_signal_handlers(self) -> None:
        """Leave the render's handlers (:func:`stop_signals`) in place."""


def without_lightning_signals(trainer: pl.Trainer) -> pl.Trainer:
    """``trainer`` with Lightning's SIGTERM and SLURM handlers switched off; returns it."""
    # A private attribute: Lightning offers no switch for its SIGTERM handling.
    trainer._signal_connector = _NoSignalHandlers(trainer)
    return trainer


class StopOnSignal(pl.Callback):
    """At the end of every step, stop if any rank received a stop signal: save a checkpoint at
    this step into ``directory`` (``step=N.ckpt``) and raise :class:`RenderStopped`.

    It must come after the callbacks that change the tiles at the end of a step (the blend),
    so that the checkpoint holds the step as a resumed render expects it.
    """

    def __init__(self, request: StopRequest, directory: Path, octave: int, octaves: int) -> None:
        """Checkpoints of octave ``octave`` (from 0) of ``octaves`` go to ``directory``."""
        self.request, self.directory = request, directory
        self.octave, self.octaves = octave, octaves
        self._group: Any = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if distributed() and "gloo" not in dist.get_backend():
            # The flag is agreed on the host: a device collective would make every step wait
            # for the device (NCCL cannot reduce host tensors).
            self._group = dist.new_group(backend="gloo")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._group is not None:
            dist.destroy_process_group(self._group)
            self._group = None

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        signum = self._agreed()
        if not signum:
            return
        step = trainer.global_step
        path = self.directory / f"step={step}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # the optimiser state too
        requeue = signum == SLURM_WARNING and trainer.is_global_zero
        requeued = _requeue_slurm_job() if requeue else None
        where = f"at step {step} of octave {self.octave + 1}/{self.octaves}"
        raise RenderStopped(signum, f"{where}: checkpoint saved ({path})", requeued)

    def _agreed(self) -> int:
        """The largest signal any rank received (0: none); one host all_reduce per step."""
        if not distributed():
            return self.request.signum
        flag = torch.tensor([self.request.signum], dtype=torch.int64)
        with peers_alive():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        return int(flag.item())


def requeued() -> bool:
    """Whether this is a SLURM job that was requeued (``SLURM_RESTART_COUNT``): it continues
    from its checkpoints as with ``resume=true``.
    """
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    if not restarts.isdigit() or int(restarts) == 0:
        return False
    log.info("SLURM job restarted %s time(s): resuming from its checkpoints", restarts)
    return True


def _requeue_slurm_job() -> str | None:
    """Requeue this SLURM job (``scontrol requeue``), as Lightning's SLURMEnvironment does on its
    warning signal; the job id, or None when there is no job or scontrol fails.
    """
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = (
        f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
        if array
        else os.environ.get("SLURM_JOB_ID")
    )
    if not job:
        return None
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except FileNotFoundError:
        log.warning("scontrol is not on the PATH: SLURM job %s is not requeued", job)
        return None
    if result.returncode != 0:
        log.warning("requeuing SLURM job %s failed: %s", job, result.stderr.strip())
        return None
    return job
