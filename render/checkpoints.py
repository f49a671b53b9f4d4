"""A render's checkpoints: the newest few kept per octave, each recording the config that made
it, and read back on resume only when it is whole and belongs to the render resuming it.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from render.errors import UserError

log = logging.getLogger(__name__)

#: Where a checkpoint keeps the config of its render (flat ``key: value``).
CONFIG_KEY = "render_config"
#: What a checkpoint needs besides: the tiles (TileRenderer) and the loop position (Lightning).
REQUIRED_KEYS = (CONFIG_KEY, "tile_store", "loops")
#: How many processes saved a checkpoint (each its own tiles, one file each; absent: one).
SHARDS_KEY = "tile_shards"
#: The objective's layers, recorded beside the config keys.
LAYERS_KEY = "objective layers"
#: What the saved tiles are and the order they are stepped in: the network and the layers they
#: are optimised for, their parameterisation, the canvas geometry and octaves, the seed and the
#: batches (tiles per step, processes), the optimiser whose state is saved. A checkpoint that
#: differs in any of these is refused; other changes (the objective, the learning rate, the
#: steps, the blending) are allowed and logged.
CANVAS_KEYS = (
    "model",
    LAYERS_KEY,
    "param",
    "init",
    "tiling",
    "render.octaves",
    "render.octave_scale",
    "seed",
    "render.tiles_per_step",
    "trainer.devices",
    "trainer.num_nodes",
    "optim._target_",
)
#: Keys that differ on every resume.
IGNORED_KEYS = ("resume",)
#: A checkpoint file that could not be read is renamed with this suffix.
UNREADABLE_SUFFIX = ".unreadable"
_STEP = re.compile(r"step=(\d+)")
_OCTAVE = "octave"


class _Unset:
    """A key one config has and the other lacks."""

    def __repr__(self) -> str:
        return "unset"


_UNSET = _Unset()


def render_config(cfg: DictConfig, layers: Iterable[str]) -> dict[str, Any]:
    """What a checkpoint records: every key of ``cfg``, resolved and flat, and the layers."""
    config = _flatten(OmegaConf.to_container(cfg, resolve=True), "")
    config[LAYERS_KEY] = sorted(layers)
    return config


def _flatten(node: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {prefix[:-1]: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


class RecordConfig(pl.Callback):
    """Writes the render's config (from :func:`render_config`) into every checkpoint."""

    def __init__(self, config: dict[str, Any]) -> None:
        """Record ``config``."""
        self.config = config

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config


def checkpoint_callback(directory: Path, every_n_steps: int, keep: int) -> ModelCheckpoint:
    """Lightning's ModelCheckpoint saving ``step=N.ckpt`` every ``every_n_steps`` steps.

    The ``keep`` newest are kept (the newest by step: ``step`` is always logged) so that an
    older one is there when the newest is damaged; ``last.ckpt`` links to the newest.
    """
    return ModelCheckpoint(
        dirpath=directory,
        filename="{step}",
        every_n_train_steps=every_n_steps,
        monitor="step",
        mode="max",
        save_top_k=keep,
        save_last="link",
        save_on_train_epoch_end=False,
    )


def shard_file(path: Path, rank: int, world: int) -> Path:
    """The file of rank ``rank`` of ``world`` in checkpoint ``path``: rank 0's is ``path`` itself
    (Lightning's file, which it links, keeps and deletes), another's ``<path>.rank<r>-of-<W>``.
    """
    return path if rank == 0 else path.with_name(f"{path.name}.rank{rank}-of-{world}")


def saved_world(path: Path) -> int:
    """How many processes saved checkpoint ``path`` (rank 0's file records it)."""
    saved = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    return int(saved.get(SHARDS_KEY, 1))


def other_world(path: Any, saved: int, world: int) -> UserError:
    """The error for resuming a checkpoint that ``saved`` processes wrote with ``world``."""
    return UserError(
        f"resume=true: {path} was saved by {saved} process(es), each with its own tiles, and "
        f"this render has {world}; resume with {saved} (trainer.devices x trainer.num_nodes, "
        f"or the launcher's processes)"
    )


@dataclass(frozen=True)
class Resume:
    """The checkpoint a render resumes from: its octave (from 0), file and recorded config."""

    octave: int
    path: Path
    config: dict[str, Any]


def find_resume(root: Path, set_aside: bool = True) -> Resume | None:
    """The newest readable checkpoint under ``root`` (``checkpoints/`` of a run), or None.

    Each unreadable or incomplete file is reported in one line and, with ``set_aside`` (the
    process that owns the run directory), renamed ``NAME.unreadable`` so that the checkpoints
    written from here on take its place. If there are checkpoints but none is readable, one
    UserError names them.
    """
    unreadable: list[tuple[Path, str]] = []
    for octave, path in _candidates(root):
        try:
            config = _read_config(path)
        except _Unreadable as error:
            log.warning("%s is unreadable (%s); trying an older checkpoint", path, error)
            unreadable.append((path, str(error)))
            continue
        if set_aside:
            for bad, _ in unreadable:
                bad.rename(bad.with_name(bad.name + UNREADABLE_SUFFIX))
        return Resume(octave, path, config)
    if unreadable:
        listed = "; ".join(f"{path} ({why})" for path, why in unreadable)
        raise UserError(
            f"resume=true: no checkpoint in {root} is readable: {listed}; "
            f"render afresh without resume=true, or in another hydra.run.dir"
        )
    return None


def octave_dir(root: Path, octave: int, octaves: int) -> Path:
    """Checkpoints of octave ``octave`` (from 0): ``root/octave<k>``, ``root`` for one octave."""
    return root / f"{_OCTAVE}{octave + 1}" if octaves > 1 else root


def has_checkpoints(root: Path) -> bool:
    """Whether ``root`` holds any checkpoint file, readable or not."""
    return next(_candidates(root), None) is not None


def _candidates(root: Path) -> Iterator[tuple[int, Path]]:
    """``(octave, file)`` of every checkpoint under ``root``, newest first.

    Folders as :func:`octave_dir` names them, the latest octave first; in a folder
    ``last.ckpt`` (a link to the newest file, or the newest itself where links cannot be made)
    comes first, then the files by step.
    """
    folders = [(0, root)] + [
        (int(d.name[len(_OCTAVE) :]) - 1, d)
        for d in root.glob(f"{_OCTAVE}*")
        if d.is_dir() and d.name[len(_OCTAVE) :].isdigit()
    ]
    for octave, folder in sorted(folders, key=lambda f: f[0], reverse=True):
        files = [p for p in folder.glob("*.ckpt") if not p.is_symlink() and p.is_file()]
        yield from ((octave, p) for p in sorted(files, key=_newest_first))


def _newest_first(path: Path) -> tuple[bool, int, str]:
    step = _STEP.search(path.name)
    return (path.name != "last.ckpt", -int(step.group(1)) if step else 0, path.name)


class _Unreadable(Exception):
    """A checkpoint file that cannot be resumed from; the message says why."""


def _read_config(path: Path) -> dict[str, Any]:
    """The config ``path`` records, after checking that the file is whole and intact.

    Every member's checksum is checked (torch's files are zip archives); the tensors are then
    mapped, not loaded: Lightning loads them when the render resumes.
    """
    _check_archive(path)
    try:
        saved = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as error:  # a damaged file fails in the zip reader, the unpickler, torch
        raise _Unreadable(str(error).strip().splitlines()[0]) from None
    missing = [key for key in REQUIRED_KEYS if key not in saved]
    if missing:
        raise _Unreadable(f"incomplete: it lacks {', '.join(missing)}")
    world = int(saved.get(SHARDS_KEY, 1))
    for rank in range(1, world):
        shard = shard_file(path, rank, world)
        if not shard.is_file():
            raise _Unreadable(f"incomplete: rank {rank}'s file {shard.name} is missing")
        _check_archive(shard)
    return saved[CONFIG_KEY]


def _check_archive(path: Path) -> None:
    """Raise _Unreadable unless ``path`` is a whole zip archive (torch's format) whose every
    member passes its checksum."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        raise _Unreadable(
            f"not a whole checkpoint: {path.name} is truncated, or not a checkpoint file"
        ) from None
    if damaged is not None:
        raise _Unreadable(f"damaged: {damaged} of {path.name} fails its checksum")


def check_resume(resume: Resume, config: Mapping[str, Any]) -> None:
    """Refuse ``resume`` if its canvas differs from ``config``'s; log any other change.

    The refusal is one UserError naming each differing key with both values.
    """
    changes = config_changes(resume.config, config)
    canvas = {key: values for key, values in changes.items() if is_under(key, CANVAS_KEYS)}
    if canvas:
        raise UserError(
            f"resume=true: {resume.path} is a checkpoint of another canvas: "
            f"{describe_changes(canvas)}; "
            f"resume with the checkpoint's values, or render afresh in another hydra.run.dir"
        )
    if changes:
        log.warning(
            "resuming %s with changes: %s",
            resume.path,
            "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()),
        )


def is_under(key: str, prefixes: Iterable[str]) -> bool:
    """Whether the flat config key ``key`` is one of ``prefixes`` or inside one."""
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def config_changes(
    there: Mapping[str, Any], here: Mapping[str, Any], ignored: Iterable[str] = IGNORED_KEYS
) -> dict[str, tuple[Any, Any]]:
    """The keys whose values differ between two recorded configs (:func:`render_config`), in
    key order, with both values (``unset`` where one lacks the key); keys at or under
    ``ignored`` left out."""
    return {
        key: (there.get(key, _UNSET), here.get(key, _UNSET))
        for key in sorted(there.keys() | here.keys())
        if not is_under(key, ignored) and there.get(key, _UNSET) != here.get(key, _UNSET)
    }


def describe_changes(changes: Mapping[str, tuple[Any, Any]]) -> str:
    """:func:`config_changes` as ``key is A there, B here; ...``."""
    return "; ".join(f"{key} is {a!r} there, {b!r} here" for key, (a, b) in changes.items())
