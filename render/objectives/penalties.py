"""Image penalties, returned as scores: each is the NEGATIVE penalty, so adding it penalises.

``channel("blocks.3", 5) + 0.05 * total_variation()`` therefore reads naturally: maximising the
sum raises the channel and lowers the variation. Every penalty is a mean over image elements, so a
weight tuned for one tile size keeps its meaning for another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from render.objectives.base import Objective
from render.objectives.checks import require_finite

__all__ = ["L1", "L2", "TotalVariation", "l1", "l2", "total_variation"]


class _ImagePenalty(Objective):
    """An objective that reads only the images, never activations."""

    __slots__ = ()

    @property
    def layers(self) -> frozenset[str]:
        """No layers: penalties look at the images."""
        return frozenset()


class TotalVariation(_ImagePenalty):
    """Minus the mean absolute difference between vertically and horizontally adjacent pixels."""

    __slots__ = ()

    def _args(self) -> tuple[Any, ...]:
        return ()

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return ``-(mean |dI/dy| + mean |dI/dx|)`` over the batch of images."""
        down = images[..., 1:, :] - images[..., :-1, :]
        right = images[..., :, 1:] - images[..., :, :-1]
        # A 1-pixel-high or -wide image has no differences along that axis; the mean of an empty
        # tensor is NaN, so leave such an axis out (empty sum = 0, still on the autograd graph).
        penalty = images.flatten()[:0].sum()
        for diff in (down, right):
            if diff.numel():
                penalty = penalty + diff.abs().mean()
        return -penalty

    def __repr__(self) -> str:
        return "total_variation()"


class L1(_ImagePenalty):
    """Minus the mean absolute deviation of the images from ``constant``."""

    __slots__ = ("constant",)
    constant: float

    def __init__(self, constant: float = 0.0) -> None:
        self._set("constant", require_finite(constant, "constant", "l1"))

    def _args(self) -> tuple[Any, ...]:
        return (self.constant,)

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return ``-mean |images - constant|``."""
        return -(images - self.constant).abs().mean()

    def __repr__(self) -> str:
        return "l1()" if self.constant == 0.0 else f"l1({self.constant:g})"


class L2(_ImagePenalty):
    """Minus the mean squared deviation of the images from ``constant``."""

    __slots__ = ("constant",)
    constant: float

    def __init__(self, constant: float = 0.5) -> None:
        self._set("constant", require_finite(constant, "constant", "l2"))

    def _args(self) -> tuple[Any, ...]:
        return (self.constant,)

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return ``-mean (images - constant) ** 2``."""
        return -(images - self.constant).square().mean()

    def __repr__(self) -> str:
        return "l2()" if self.constant == 0.5 else f"l2({self.constant:g})"


def total_variation() -> Objective:
    """Score of minus the mean absolute difference of neighbouring pixels (higher = smoother).

    Lucid's ``total_variation`` is the same anisotropic L1 variation but summed, not averaged.
    """
    return TotalVariation()


def l1(constant: float = 0.0) -> Objective:
    """Score of minus the mean absolute deviation of pixel values from ``constant``."""
    return L1(constant)


def l2(constant: float = 0.5) -> Objective:
    """Score of minus the mean squared deviation of pixel values from ``constant`` (default grey).

    Lucid's ``L2`` is the square root of the summed squares; the mean square keeps the scale
    independent of tile size and its gradient simple.
    """
    return L2(constant)
