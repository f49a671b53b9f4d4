"""Argument checks shared by the objective factories: each failure is a UserError naming the value.

Factories check what they can know alone (types, signs, finiteness); ``Objective.validate`` checks
what needs the model (layer names and channel counts).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping

from torch import Tensor

from render.errors import UserError
from render.objectives.base import Objective

__all__ = [
    "check_index_in_range",
    "check_layer",
    "fetch",
    "require_finite",
    "require_index",
    "require_layer_name",
    "require_objective",
    "require_share",
]


def require_layer_name(layer: object, owner: str) -> str:
    """Return ``layer`` if it is a non-empty string, else raise UserError."""
    if not isinstance(layer, str) or not layer:
        raise UserError(
            f"{owner}: layer must be a non-empty string naming a model layer, got {layer!r}"
        )
    return layer


def require_index(value: object, name: str, owner: str) -> int:
    """Return ``value`` as an int if it is a non-negative integer, else raise UserError."""
    # bool is an Integral, but `channel=True` is surely a config slip, not channel 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{owner}: {name} must be a non-negative integer, got {value!r}")
    if value < 0:
        # Python's negative indexing would silently pick a channel from the end; refuse instead.
        raise UserError(f"{owner}: {name} must be a non-negative integer, got {value}")
    return int(value)


def require_finite(value: object, name: str, owner: str) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise UserError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{owner}: {name} must be a finite real number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise UserError(f"{owner}: {name} must be a finite real number, got {result}")
    return result


def require_share(value: object, name: str, owner: str, whole: str) -> float:
    """Return ``value`` as a float if it is a number in [0, 1] (a share of ``whole``)."""
    share = require_finite(value, name, owner)
    if not 0 <= share <= 1:
        raise UserError(f"{owner}: {name} must be in [0, 1] (a share of {whole}), got {share}")
    return share


def check_layer(layer: str, channels: Mapping[str, int], owner: str) -> int:
    """Return the channel count of ``layer``, or raise UserError suggesting close layer names."""
    if layer in channels:
        return int(channels[layer])
    names = sorted(channels)
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    if close:
        hint = "did you mean: " + ", ".join(close) + "?"
    elif names:
        shown = ", ".join(names[:10])
        more = f", ... ({len(names)} in all)" if len(names) > 10 else ""
        hint = f"valid layers: {shown}{more}"
    else:
        hint = "the model exposes no layers"
    raise UserError(f"{owner}: unknown layer {layer!r}; {hint}")


def check_index_in_range(
    value: int, name: str, layer: str, count: int, owner: str, unit: str = "channels"
) -> None:
    """Raise UserError unless ``0 <= value < count`` (``count`` = channels of ``layer``)."""
    if not 0 <= value < count:
        raise UserError(
            f"{owner}: {name} {value} is out of range for layer {layer!r} with {count} {unit}; "
            f"valid values are 0..{count - 1}"
        )


def fetch(activations: Mapping[str, Tensor], layer: str, owner: str) -> Tensor:
    """Return ``activations[layer]``; a missing layer means the hooks were not set up for it."""
    try:
        return activations[layer]
    except KeyError:
        # A KeyError rather than UserError: validate() accepted the layer, so the caller failed to
        # capture it, which is a bug in the calling code rather than a user mistake.
        raise KeyError(
            f"{owner}: no activation captured for layer {layer!r}; captured: {sorted(activations)}"
        ) from None


def require_objective(value: object, where: str) -> Objective:
    """Return ``value`` if it is an objective, else raise UserError naming ``where``."""
    if not isinstance(value, Objective):
        # Typically a nested config that lacks `_target_`, or instantiation with _recursive_=False.
        raise UserError(
            f"{where} must be an objective (a config node with "
            f"`_target_: render.objectives.<factory>`), got {type(value).__name__}: {value!r}"
        )
    return value
