"""The plan of a render: its octaves (canvas sizes, coarse to fine) and the steps of each.

A render from noise on a canvas larger than a tile is a pyramid: octave 1 is a canvas of about
one tile (the whole composition in one forward pass), each later octave is at most
``MAX_PYRAMID_SCALE`` times larger, the last is the full canvas. A render that starts from a
photo keeps deep dream's schedule (``DREAM_OCTAVE_SCALE``, one octave unless asked for more).

Each octave runs enough steps that every tile gets ``updates_per_tile`` optimiser updates, so
the time grows with the number of tiles and a large canvas gets the care of a small one
(``render.update_decay`` below 1 gives each finer octave that share of the one before);
``trainer.max_steps``, when given, sets the steps of every octave instead. With
``render.context`` each update of an octave after the first scores two images, the tile and its
context view (render/context.py), so those steps cost about twice as much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from omegaconf import DictConfig

from render.errors import UserError

#: Largest growth of the canvas from one octave of a pyramid to the next (per side).
MAX_PYRAMID_SCALE = 2.0
#: The classic DeepDream octave scale, the default for renders that start from a photo.
DREAM_OCTAVE_SCALE = 1.4
#: A canvas at most this much larger than a tile (per side) is rendered in one octave.
SINGLE_OCTAVE_SLACK = 1.05
#: A pyramid whose canvas is more than this many times its first octave (per side; 5 octaves
#: or more at the default scale) is deep: its finest octave and its context views get more.
DEEP_RATIO = 8.0
#: ``render.finest_updates`` when null, on a deep pyramid. Measured at 2048x2048 (class_logit,
#: docs/guide/posters.md): the finest octave's detail is 98% of a single-scale render's with
#: 1, 103% with 1.2 (at 1024 the pyramid has 114% with 1).
DEEP_FINEST_UPDATES = 1.2


@dataclass(frozen=True)
class Octave:
    """One octave of a render: its canvas size, tile count and optimiser steps."""

    index: int
    size: tuple[int, int]
    tiles: int
    steps: int
    updates_per_tile: float
    # Images the model sees per tile update: the tile, and its context view (render/context.py).
    views: int = 1


def pyramid_schedule(base: tuple[int, int], tile: tuple[int, int]) -> tuple[int, float]:
    """``(octaves, scale)`` of the default pyramid from about one tile up to ``base``.

    The ratio is taken on the side that is closest to its tile, so that octave 1 covers at
    least one tile in both directions and keeps the canvas's aspect ratio.
    """
    ratio = min(b / t for b, t in zip(base, tile, strict=True))
    if ratio <= SINGLE_OCTAVE_SLACK:
        return 1, MAX_PYRAMID_SCALE
    octaves = math.ceil(math.log(ratio, MAX_PYRAMID_SCALE) - 1e-9) + 1
    return octaves, ratio ** (1 / (octaves - 1))


def octave_schedule(
    base: tuple[int, int],
    tile: tuple[int, int],
    octaves: int | None,
    scale: float | None,
    from_image: bool,
) -> tuple[int, float]:
    """``render.octaves`` and ``render.octave_scale`` with their defaults filled in.

    Values the user gives win. Otherwise a render from noise gets :func:`pyramid_schedule`;
    one from a photo gets one octave, or ``DREAM_OCTAVE_SCALE`` between the octaves it asks for.
    """
    if from_image:
        return (1 if octaves is None else octaves), (DREAM_OCTAVE_SCALE if scale is None else scale)
    auto_octaves, auto_scale = pyramid_schedule(base, tile)
    if octaves is None and scale is None:
        return auto_octaves, auto_scale
    if octaves is None:
        assert scale is not None
        if scale <= 1:
            raise UserError(f"render.octave_scale must be > 1, got {scale}")
        ratio = min(b / t for b, t in zip(base, tile, strict=True))
        return max(1, math.ceil(math.log(max(ratio, 1.0), scale) - 1e-9) + 1), scale
    if scale is None and octaves > 1:
        # Octave 1 about one tile where ``octaves`` can reach it without steps above 2x.
        ratio = min(b / t for b, t in zip(base, tile, strict=True))
        scale = min(MAX_PYRAMID_SCALE, ratio ** (1 / (octaves - 1))) if ratio > 1 else auto_scale
    return octaves, (auto_scale if scale is None else scale)


def octave_sizes(
    base: tuple[int, int], tile: list[int], octaves: int, scale: float
) -> list[tuple[int, int]]:
    """Canvas sizes from coarse to fine, the last being ``base``; never smaller than a tile."""
    if octaves < 1:
        raise UserError(f"render.octaves must be >= 1, got {octaves}")
    if octaves > 1 and scale <= 1:
        raise UserError(f"render.octave_scale must be > 1, got {scale}")
    sizes = []
    for o in range(octaves):
        factor = scale ** (octaves - 1 - o)
        height, width = (
            b if factor == 1 else min(b, max(t, round(b / factor)))
            for b, t in zip(base, tile, strict=True)
        )
        sizes.append((height, width))
    return sizes


def is_deep(first: tuple[int, int], final: tuple[int, int]) -> bool:
    """Whether a pyramid from ``first`` (its first octave's size) to ``final`` is deep."""
    return max(f / s for f, s in zip(final, first, strict=True)) > DEEP_RATIO


def octave_updates(settings: DictConfig, sizes: Sequence[tuple[int, int]], index: int) -> float:
    """Updates of every tile in octave ``index`` of a pyramid of ``sizes`` (coarse to fine),
    by ``settings`` (``cfg.render``): ``updates_per_tile`` times ``update_decay`` per octave
    before it, and in the finest octave of a pyramid times ``finest_updates`` (null: 1.2 when
    deep).
    """
    updates = settings.updates_per_tile * settings.update_decay**index
    if len(sizes) == 1 or index < len(sizes) - 1:
        return updates
    finest = settings.finest_updates
    if finest is None:
        finest = DEEP_FINEST_UPDATES if is_deep(sizes[0], sizes[-1]) else 1.0
    return updates * finest


def views_per_tile(context: bool, from_image: bool, index: int) -> int:
    """Images the model sees per tile update in octave ``index`` (0: the first): with
    ``render.context``, each octave after the first of a pyramid from noise also scores every
    tile's context view (a photo's octaves dream on the photo's own composition).
    """
    return 2 if context and not from_image and index > 0 else 1


def steps_for(tiles: int, tiles_per_step: int, updates_per_tile: float, world_size: int = 1) -> int:
    """Steps that give each of ``tiles`` tiles ``updates_per_tile`` updates (at least one step).

    One pass over the tiles takes ``ceil(ceil(tiles / world_size) / tiles_per_step)`` steps
    (the batches of :class:`render.schedule.TileBatches`); a fractional count of updates runs
    that fraction of a last pass.
    """
    if updates_per_tile <= 0 or not math.isfinite(updates_per_tile):
        raise UserError(f"render.updates_per_tile must be a number > 0, got {updates_per_tile}")
    shard = math.ceil(tiles / world_size)
    per_pass = math.ceil(shard / min(tiles_per_step, shard))
    return max(1, round(updates_per_tile * per_pass))


def updates_per_tile(tiles: int, tiles_per_step: int, steps: int, world_size: int = 1) -> float:
    """Updates each tile gets from ``steps`` steps (the inverse of :func:`steps_for`)."""
    shard = math.ceil(tiles / world_size)
    per_pass = math.ceil(shard / min(tiles_per_step, shard))
    return steps / per_pass
