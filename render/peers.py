"""The processes of a multi-process render: whether there are several, and one clear error when
another of them has ended."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist

from render.errors import UserError

__all__ = ["PeerFailure", "distributed", "peers_alive"]


class PeerFailure(UserError):
    """Another process of a multi-process render ended; every process stops with this."""


def distributed() -> bool:
    """Whether this process is one of several of a render (an initialised process group)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextmanager
def peers_alive() -> Iterator[None]:
    """Turn a collective that failed because another process ended into one clear error."""
    try:
        yield
    except RuntimeError as error:  # gloo and NCCL report a lost peer as a RuntimeError
        # gloo: "[.../pair.cc:561] Connection closed by peer [127.0.0.1]:32640. This is ..."
        reason = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip()).split(". ")[0]
        raise PeerFailure(
            f"another process of this render ended ({reason or type(error).__name__}); every "
            f"process stops, nothing more is written and the last checkpoint is intact"
        ) from error
