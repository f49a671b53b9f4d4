"""Lucid's standard robustness transforms, drawn independently for every tile in a batch.

Random choices are drawn on the CPU from the caller's ``torch.Generator`` only, so a seed gives
the same transforms on any device. Every step is differentiable with respect to the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode

from render.errors import UserError

#: Lucid's ``random_scale`` choices: 0.9, 0.92, ..., 1.1.
DEFAULT_SCALES: tuple[float, ...] = tuple(1 + (i - 5) / 50 for i in range(11))
#: Lucid's ``random_rotate`` choices in degrees (Lucid also appends five extra zeros).
DEFAULT_ANGLES: tuple[float, ...] = tuple(float(a) for a in range(-10, 11))


def _non_negative_int(name: str, value: object) -> int:
    """Return ``value`` or raise UserError unless it is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"transforms.{name} must be an integer >= 0 (pixels), got {value!r}")
    return value


def _finite(name: str, value: object) -> float:
    """Return ``value`` as a float or raise UserError unless it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"transforms.{name} must be a finite number, got {value!r}")
    return float(value)


def _choices(name: str, values: Iterable[float], positive: bool) -> tuple[float, ...]:
    """Return a non-empty tuple of finite (and, if ``positive``, > 0) numbers or raise UserError."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise UserError(f"transforms.{name} must be a list of numbers, got {values!r}")
    out = tuple(_finite(name, v) for v in values)
    if not out:
        raise UserError(f"transforms.{name} must list at least one value, got an empty list")
    if positive and min(out) <= 0:
        raise UserError(f"transforms.{name} must all be > 0, got {list(out)}")
    return out


def _check_generator(generator: torch.Generator) -> None:
    """Raise ValueError unless ``generator`` is a CPU ``torch.Generator``."""
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"transforms need a CPU torch.Generator, got {generator!r}")


class RobustnessTransforms(torch.nn.Module):
    """Pad, jitter, scale, rotate, jitter again: Lucid's ``standard_transforms``, per tile.

    Output tiles are ``H + 2 * pad - jitter - final_jitter`` by the same in width, all equal so
    the batch stacks. Jitters are random crops (offsets 0..d inclusive, as Lucid's
    ``random_crop``). Unlike Lucid, which resizes the whole batch, each tile gets its own scale:
    scale and rotation are one bilinear affine warp about the tile centre that keeps the size,
    i.e. Lucid's resize followed by a centre crop (scale > 1) or ``pad_value`` border
    (scale < 1) back to the scale-1 size, with a single resampling instead of two.
    """

    def __init__(
        self,
        pad: int = 12,
        pad_value: float = 0.5,
        jitter: int = 8,
        scales: Iterable[float] | None = None,
        angles: Iterable[float] | None = None,
        final_jitter: int = 4,
    ) -> None:
        """Validate and store the transform ranges (pixels, scale factors, degrees)."""
        super().__init__()
        self.pad = _non_negative_int("pad", pad)
        self.pad_value = _finite("pad_value", pad_value)
        self.jitter = _non_negative_int("jitter", jitter)
        self.scales = DEFAULT_SCALES if scales is None else _choices("scales", scales, True)
        self.angles = DEFAULT_ANGLES if angles is None else _choices("angles", angles, False)
        self.final_jitter = _non_negative_int("final_jitter", final_jitter)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Return the size of the transformed tiles for input tiles of ``height`` x ``width``."""
        shrink = self.jitter + self.final_jitter - 2 * self.pad
        out = (height - shrink, width - shrink)
        if min(out) < 1:
            raise UserError(
                f"tiles of {height}x{width} are too small for transforms with pad={self.pad}, "
                f"jitter={self.jitter}, final_jitter={self.final_jitter}: jitter + final_jitter "
                f"must be less than 2 * pad + the tile size"
            )
        return out

    def forward(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Transform each tile of ``images`` [n, 3, H, W] with its own draw from ``generator``."""
        if images.dim() != 4:
            raise ValueError(f"expected images [n, C, H, W], got shape {list(images.shape)}")
        _check_generator(generator)
        n = images.shape[0]
        out_h, out_w = self.output_size(images.shape[-2], images.shape[-1])
        # Draw everything up front in a fixed order, on the CPU, so results depend only on the seed.
        first = torch.randint(0, self.jitter + 1, (n, 2), generator=generator).tolist()
        scale_idx = torch.randint(0, len(self.scales), (n,), generator=generator).tolist()
        angle_idx = torch.randint(0, len(self.angles), (n,), generator=generator).tolist()
        last = torch.randint(0, self.final_jitter + 1, (n, 2), generator=generator).tolist()

        if self.pad:
            images = TF.pad(images, [self.pad], fill=self.pad_value, padding_mode="constant")
        mid_h, mid_w = images.shape[-2] - self.jitter, images.shape[-1] - self.jitter
        tiles = []
        for i in range(n):
            tile = TF.crop(images[i], first[i][0], first[i][1], mid_h, mid_w)
            scale, angle = self.scales[scale_idx[i]], self.angles[angle_idx[i]]
            if scale != 1 or angle != 0:
                # Warping tile - pad_value with zero fill and adding it back fills the uncovered
                # corners with pad_value and blends edges linearly, and stays differentiable.
                tile = (
                    TF.affine(
                        tile - self.pad_value,
                        angle=angle,
                        translate=[0.0, 0.0],
                        scale=scale,
                        shear=[0.0, 0.0],
                        interpolation=InterpolationMode.BILINEAR,
                    )
                    + self.pad_value
                )
            tiles.append(TF.crop(tile, last[i][0], last[i][1], out_h, out_w))
        if not tiles:
            return images.new_empty((0, images.shape[1], out_h, out_w))
        return torch.stack(tiles)

    def extra_repr(self) -> str:
        """Show the settings in ``repr``."""
        return (
            f"pad={self.pad}, pad_value={self.pad_value}, jitter={self.jitter}, "
            f"scales={list(self.scales)}, angles={list(self.angles)}, "
            f"final_jitter={self.final_jitter}"
        )


class NoTransforms(torch.nn.Module):
    """No robustness transforms (config ``transforms=none``): returns the tiles unchanged."""

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Return ``(height, width)``: tiles keep their size."""
        return (height, width)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Return ``images`` as given; ``generator`` is accepted for a common signature."""
        return images
