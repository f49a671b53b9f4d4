"""``mask``: a picture whose colours say which objective rules where on the canvas.

Every region names one colour of the mask. A pixel of a region's colour belongs to it; a pixel
whose colour lies between two regions' colours (an antialiased or blurred edge) belongs to both
in proportion, so the objectives cross-fade where the mask is soft. The mask is stretched over
the canvas whatever its size.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image, ImageColor, UnidentifiedImageError
from torch import Tensor

from render.config import find_shipped
from render.errors import UserError
from render.objectives.base import Objective
from render.objectives.checks import require_objective
from render.objectives.spatial import ImageMap

__all__ = ["mask", "memberships", "read_mask"]

#: How far (0..255 per channel, Euclidean) a pixel may lie from a colour or a mix of two.
TOLERANCE = 12.0

Colour = tuple[int, int, int]


def _hex(colour: Sequence[float]) -> str:
    return "#" + "".join(f"{round(float(c)):02x}" for c in colour)


def parse_colour(spec: object) -> Colour:
    """A colour given as ``"#rrggbb"`` (or ``"rrggbb"``: a ``#`` cannot start a key on the
    command line), a name (``"red"``) or ``[r, g, b]`` in 0..255.
    """
    if isinstance(spec, str):
        try:
            hex_digits = re.fullmatch(r"[0-9a-fA-F]{6}", spec)
            return ImageColor.getrgb(f"#{spec}" if hex_digits else spec)[:3]
        except ValueError:
            pass
    elif (
        isinstance(spec, Sequence)
        and len(spec) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in spec)
    ):
        return tuple(spec)
    raise UserError(
        f"mask: region colour {spec!r} is not a colour; give '#rrggbb', a colour name such as "
        f"'red', or [r, g, b] in 0..255"
    )


def read_mask(path: str | Path) -> Tensor:
    """The mask's RGB pixels ``[H, W, 3]`` (float, 0..255); a clear error if it cannot be read."""
    path = find_shipped(path)
    if not path.is_file():
        raise UserError(f"mask: path '{path}' is not a file; give a PNG whose colours are regions")
    try:
        with Image.open(path) as picture:
            rgb = picture.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"mask: '{path}' cannot be read as an image ({error})") from None
    return (
        torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        .reshape(rgb.height, rgb.width, 3)
        .float()
    )


def _nearest_mix(colours: Tensor, named: Tensor) -> tuple[Tensor, Tensor]:
    """For each colour [U, 3]: its shares of the named colours [U, K] and the distance [U] to
    the nearest named colour or mix of two named colours.
    """
    count = named.shape[0]
    best = (colours[:, None, :] - named[None]).norm(dim=-1)  # [U, K]: a colour on its own
    distance, nearest = best.min(dim=1)
    shares = torch.nn.functional.one_hot(nearest, count).float()
    for i, j in itertools.combinations(range(count), 2):
        a, b = named[i], named[j]
        t = ((colours - a) @ (b - a) / (b - a).square().sum()).clamp(0, 1)
        gap = (colours - (a + t[:, None] * (b - a))).norm(dim=-1)
        closer = gap < distance
        distance = torch.where(closer, gap, distance)
        shares[closer] = 0
        shares[closer, i] = 1 - t[closer]
        shares[closer, j] = t[closer]
    return shares, distance


def memberships(pixels: Tensor, colours: Sequence[Colour], name: str) -> Tensor:
    """Each region's share of every pixel ``[K, H, W]`` (they sum to 1), from the mask's pixels
    ``[H, W, 3]`` and the regions' colours; a clear error for a colour no region names, or a
    region whose colour the mask does not hold.
    """
    named = torch.tensor(colours, dtype=torch.float32)
    unique, inverse, counts = torch.unique(
        pixels.reshape(-1, 3), dim=0, return_inverse=True, return_counts=True
    )
    shares, distance = _nearest_mix(unique, named)
    stray = (distance > TOLERANCE).nonzero().flatten()
    regions = ", ".join(_hex(c) for c in colours)
    if len(stray):
        worst = stray[counts[stray].argsort(descending=True)][:3]
        shown = ", ".join(f"{_hex(unique[u])} ({int(counts[u])} pixels)" for u in worst)
        raise UserError(
            f"mask: {name} has colours that no region names: {shown}; the regions name {regions}"
        )
    on_own = (unique[:, None, :] - named[None]).norm(dim=-1) <= TOLERANCE  # [U, K]
    for k, colour in enumerate(colours):
        if not on_own[:, k].any():
            held = counts.argsort(descending=True)[:4]
            shown = ", ".join(_hex(unique[u]) for u in held)
            raise UserError(
                f"mask: region {_hex(colour)} names no colour of {name}; its colours "
                f"include {shown}"
            )
    height, width = pixels.shape[:2]
    return shares[inverse].reshape(height, width, -1).permute(2, 0, 1)


def mask(path: str, regions: Mapping[object, Objective]) -> Objective:
    """Each objective of ``regions`` (colour -> objective) where the mask at ``path`` has that
    colour, cross-fading where the mask's colour is a mix of two regions' colours.
    """
    if not isinstance(regions, Mapping) or not regions:
        raise UserError(
            f"mask: regions must map colours to objectives ({{'#ff0000': ..., 'blue': ...}}), "
            f"got {regions!r}"
        )
    colours = [parse_colour(spec) for spec in regions]
    if len(set(colours)) != len(colours):
        raise UserError(f"mask: two regions name the same colour: {list(regions)}")
    objectives = [
        require_objective(objective, f"mask: regions[{spec!r}]")
        for spec, objective in regions.items()
    ]
    shares = memberships(read_mask(path), colours, f"'{path}'")
    terms = [
        objective.where(ImageMap(share, label=f"{Path(path).name} {_hex(colour)}"))
        for objective, share, colour in zip(objectives, shares, colours, strict=True)
    ]
    return sum(terms[1:], terms[0])
