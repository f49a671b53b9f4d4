"""The exceptions a render ends with that are not bugs: a user's mistake, or a stop signal."""

from __future__ import annotations

import signal
from pathlib import Path


class UserError(Exception):
    """A bad value a user supplied; its message names the value and what would be valid.

    ``scripts/render.py`` prints the message alone and exits non-zero, keeping tracebacks for bugs.
    """


class RenderStopped(Exception):
    """A render stopped by a signal, after saving a checkpoint at its current step.

    ``resume`` ends the message: how to continue (the command line puts the command there). The
    exit status of a stopped command is ``128 + signal`` (143 for SIGTERM), as a shell reports a
    process that a signal ended.
    """

    def __init__(
        self,
        signum: int,
        step: int,
        octave: int,
        octaves: int,
        checkpoint: Path,
        requeued: str | None = None,
    ) -> None:
        """Stopped by ``signum`` at ``step`` of octave ``octave`` (from 1) of ``octaves``."""
        super().__init__()
        self.signum, self.step, self.octave, self.octaves = signum, step, octave, octaves
        self.checkpoint, self.requeued = checkpoint, requeued
        self.resume = "resume with resume=true in the same run directory"

    @property
    def exit_status(self) -> int:
        """``128 + signal``: 143 for SIGTERM, 138 for SIGUSR1."""
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        requeued = f"; SLURM job {self.requeued} requeued" if self.requeued else ""
        return (
            f"stopped by {name} at step {self.step} of octave {self.octave}/{self.octaves}: "
            f"checkpoint saved ({self.checkpoint}){requeued}; {self.resume}"
        )
