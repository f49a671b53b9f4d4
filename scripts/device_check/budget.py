"""Each section's share of the wall-clock budget: a deadline that stops it, and a clock."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class OverBudget(BaseException):
    """A section ran past its share of the budget (a BaseException: Lightning re-raises it and
    per-case handlers, which catch Exception, let it through to the section)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise OverBudget in this (main) thread after ``seconds`` of wall-clock time."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise OverBudget(f"stopped after its {seconds:.0f} s share of the budget")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Clock:
    """Seconds left until a point in time."""

    end: float

    def left(self) -> float:
        return self.end - time.monotonic()
