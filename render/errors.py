"""The exceptions a render ends with that are not bugs: a user's mistake, or a stop signal."""

from __future__ import annotations

import signal


class UserError(Exception):
    """A bad value a user supplied; its message names the value and what would be valid.

    ``scripts/render.py`` prints the message alone and exits non-zero, keeping tracebacks for bugs.
    """


class RenderStopped(Exception):
    """A render stopped by a signal, after saving what it resumes from.

    ``resume`` ends the message: how to continue (the command line puts the command there). The
    exit status of a stopped command is ``128 + signal`` (143 for SIGTERM), as a shell reports a
    process that a signal ended.
    """

    def __init__(self, signum: int, what: str, requeued: str | None = None) -> None:
        """Stopped by ``signum``; ``what``: where, and what was saved ("at step 2 of octave
        1/1: checkpoint saved (PATH)"); ``requeued``: the SLURM job requeued, if any."""
        super().__init__()
        self.signum, self.what, self.requeued = signum, what, requeued
        self.resume = "resume with resume=true in the same run directory"

    @property
    def exit_status(self) -> int:
        """``128 + signal``: 143 for SIGTERM, 138 for SIGUSR1."""
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        requeued = f"; SLURM job {self.requeued} requeued" if self.requeued else ""
        return f"stopped by {name} {self.what}{requeued}; {self.resume}"
