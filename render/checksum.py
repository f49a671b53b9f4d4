"""SHA-256 of weight files, remembered across runs so that a render does not re-read gigabytes.

The digest of each file is kept in ``$XDG_CACHE_HOME/tiledream/sha256.json`` (default
``~/.cache``) under the file's real path, with the size and modification time it had: a file
that changed is hashed again. A cache that cannot be read or written is only a slower render.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from render.outputs import atomic_path

__all__ = ["cache_file", "sha256"]


def cache_file() -> Path:
    """Where the digests are kept."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tiledream" / "sha256.json"


def sha256(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of the file at ``path``, from the cache when the file is unchanged."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    stamp = [stat.st_size, stat.st_mtime_ns]
    known = _read_cache()
    entry = known.get(real)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return str(entry["sha256"])
    digest = hashlib.sha256()
    with open(real, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    known[real] = {"stamp": stamp, "sha256": digest.hexdigest()}
    try:
        with atomic_path(cache_file()) as tmp:
            tmp.write_text(json.dumps(known, indent=1))
    except OSError:
        pass  # a read-only home: the next render hashes again
    return digest.hexdigest()


def _read_cache() -> dict[str, object]:
    try:
        known = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}
