"""Feature accentuation (Hamblin et al. 2024): raise a feature in a photo while keeping the photo.

A render that starts from a photo (``init=image``) maximises ``target`` plus
``keep_weight * keep_photo(keep_layer)``: minus the distance between the render's activations at
an earlier layer and the photo's own there. What changes is what the feature needs; the rest of
the photo stays, up to that layer.

The photo's activations are of the same view as the render's: the renderer takes the photo's own
tile at the tile's place on the canvas (the photo at the octave's size), runs it through the same
draw of the robustness transforms and the model, without gradients, and passes the layers of
``Objective.photo_layers`` to the objective under :func:`on_photo` names. Any objective can read
them, so ``keep_photo`` is also a term of ``objective=sum`` or a ``where`` of a weight map.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from render.errors import UserError
from render.objectives.activations import _LayerObjective
from render.objectives.base import Objective
from render.objectives.checks import fetch, require_finite, require_objective

__all__ = ["KeepPhoto", "accentuate", "keep_photo", "on_photo", "photo_activations"]

#: Prefix of the names under which a photo's activations are passed to objectives.
PHOTO = "photo:"


def on_photo(layer: str) -> str:
    """The name of ``layer``'s activations on the photo in an objective's ``activations``."""
    return PHOTO + layer


@torch.no_grad()
def photo_activations(
    capture: Callable[[Tensor, Sequence[str]], dict[str, Tensor]],
    views: Tensor,
    layers: Sequence[str],
) -> dict[str, Tensor]:
    """The activations of ``layers`` on ``views`` of the photo (``capture``: the model's), under
    :func:`on_photo` names; constants of the render, so no gradient is kept.
    """
    return {on_photo(name): act for name, act in capture(views, layers).items()}


class KeepPhoto(_LayerObjective):
    """Minus the mean over positions of the L2 distance (over channels) between the render's
    activations at a layer and the photo's at the same view (faccent's ``l2_compare``).
    """

    __slots__ = ()

    @property
    def _factory(self) -> str:
        return "keep_photo"

    @property
    def photo_layers(self) -> frozenset[str]:
        """The layer, on the photo too."""
        return self.layers

    def per_position(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Minus the distance per tile and position (per tile for a layer without positions)."""
        act = fetch(activations, self.layer, repr(self))
        photo = fetch(activations, on_photo(self.layer), repr(self))
        return -torch.linalg.vector_norm(act - photo, dim=1)

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Minus the mean distance to the photo's activations: 0 for the photo itself."""
        return self.per_position(activations, images).mean()

    def __repr__(self) -> str:
        return f"keep_photo({self.layer})"


def keep_photo(layer: str) -> Objective:
    """Closeness of ``layer``'s activations to the initial photo's (0 at best): the term that
    keeps a feature accentuation on its photo. A render with it needs ``init=image``.
    """
    return KeepPhoto(layer)


def accentuate(target: Objective, keep_layer: str, keep_weight: float = 1.0) -> Objective:
    """``target + keep_weight * keep_photo(keep_layer)``: feature accentuation of the initial
    photo. ``keep_weight`` 0 is ``target`` alone (deep dream on the photo, for comparison).
    """
    target = require_objective(target, "accentuate: target")
    keep = keep_photo(keep_layer)
    weight = require_finite(keep_weight, "keep_weight", "accentuate")
    if weight < 0:
        raise UserError(
            f"accentuate: keep_weight must be >= 0 (a negative one pushes the render away "
            f"from the photo), got {weight:g}"
        )
    return target if weight == 0 else target + weight * keep
