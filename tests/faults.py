"""Objectives that fail on rank 1 of a multi-process render, for the tests (``_target_``)."""

import os
import signal

import torch.distributed as dist

from render.objectives.activations import Channel

FAIL_AT_CALL = 3


class _FailingOnRank1(Channel):
    """The channel objective, until its third call on rank 1."""

    def __call__(self, activations, images):
        score = super().__call__(activations, images)
        calls = getattr(self, "_calls", 0) + 1
        object.__setattr__(self, "_calls", calls)
        if dist.is_initialized() and dist.get_rank() == 1 and calls == FAIL_AT_CALL:
            return self.fail(score)
        return score

    def fail(self, score):
        raise NotImplementedError


class _NaNOnRank1(_FailingOnRank1):
    def fail(self, score):
        return score * float("nan")


class _KilledOnRank1(_FailingOnRank1):
    def fail(self, score):
        os.kill(os.getpid(), signal.SIGKILL)


def nan_on_rank_1(layer: str, channel: int) -> Channel:
    """``channel(layer, channel)`` whose third score on rank 1 is NaN."""
    return _NaNOnRank1(layer, channel)


def killed_on_rank_1(layer: str, channel: int) -> Channel:
    """``channel(layer, channel)`` whose rank 1 is killed (SIGKILL) at its third step."""
    return _KilledOnRank1(layer, channel)
