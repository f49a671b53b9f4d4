"""Give freed heap memory back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "malloc_trim") else None


def release_free_memory() -> None:
    """Return free heap pages to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    glibc keeps the pages of freed tensors smaller than its mmap threshold; after a blend or
    a full-canvas output this is hundreds of MB that the next phase would otherwise stack
    on, so resident memory would not track live tensors.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
