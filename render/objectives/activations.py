"""Objectives that read layer activations: channel, neuron, deepdream, class logit, etc.

The factories here are ``channel``, ``neuron``, ``deepdream``, ``class_logit``, ``direction`` and
``diversity``.

Every score is a mean over the tile batch (and over positions where that applies), so its scale
does not depend on how many tiles are optimised at once or how large they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from render.errors import UserError
from render.objectives.base import Objective
from render.objectives.checks import (
    check_index_in_range,
    check_layer,
    fetch,
    require_finite,
    require_index,
    require_layer_name,
)

__all__ = [
    "LOGITS",
    "Channel",
    "ClassLogit",
    "DeepDream",
    "Direction",
    "Diversity",
    "Neuron",
    "channel",
    "class_logit",
    "deepdream",
    "direction",
    "diversity",
    "neuron",
]

#: The activation name under which the model's [N, num_classes] output is passed.
LOGITS = "logits"


def _zero_like_graph(tensor: Tensor) -> Tensor:
    # An empty sum is exactly 0 yet stays attached to the autograd graph, so autograd.grad still
    # works (with zero gradient), and unlike ``tensor.sum() * 0`` it cannot turn into NaN.
    return tensor.flatten()[:0].sum()


class _LayerObjective(Objective):
    """An objective reading one named layer."""

    __slots__ = ("layer",)
    layer: str

    def __init__(self, layer: str) -> None:
        self._set("layer", require_layer_name(layer, self._factory))

    @property
    def _factory(self) -> str:
        # The factory's name (channel, neuron, ...) prefixes argument errors.
        return type(self).__name__.lower()

    def _args(self) -> tuple[Any, ...]:
        return (self.layer,)

    @property
    def layers(self) -> frozenset[str]:
        """The one layer this objective reads."""
        return frozenset((self.layer,))

    def validate(self, channels: Mapping[str, int]) -> None:
        """Raise UserError if the layer is not one of the model's layers."""
        check_layer(self.layer, channels, repr(self))


class Channel(_LayerObjective):
    """Mean activation of one channel over batch and space."""

    __slots__ = ("channel",)
    channel: int

    def __init__(self, layer: str, channel: int) -> None:
        super().__init__(layer)
        self._set("channel", require_index(channel, "channel", "channel"))

    def _args(self) -> tuple[Any, ...]:
        return (self.layer, self.channel)

    def validate(self, channels: Mapping[str, int]) -> None:
        """Raise UserError if the layer is unknown or the channel is out of range."""
        count = check_layer(self.layer, channels, repr(self))
        check_index_in_range(self.channel, "channel", self.layer, count, repr(self))

    def per_position(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """``activations[layer][:, channel]``: one score per tile and position."""
        return fetch(activations, self.layer, repr(self))[:, self.channel]

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return the mean of ``activations[layer][:, channel]``."""
        return self.per_position(activations, images).mean()

    def __repr__(self) -> str:
        return f"channel({self.layer}, {self.channel})"


class Neuron(_LayerObjective):
    """Activation of one channel at one spatial position (the centre by default), batch mean."""

    __slots__ = ("channel", "x", "y")
    channel: int
    x: int | None
    y: int | None

    def __init__(
        self, layer: str, channel: int, x: int | None = None, y: int | None = None
    ) -> None:
        super().__init__(layer)
        self._set("channel", require_index(channel, "channel", "neuron"))
        self._set("x", None if x is None else require_index(x, "x", "neuron"))
        self._set("y", None if y is None else require_index(y, "y", "neuron"))

    def _args(self) -> tuple[Any, ...]:
        return (self.layer, self.channel, self.x, self.y)

    def validate(self, channels: Mapping[str, int]) -> None:
        """Raise UserError if the layer is unknown or the channel is out of range.

        Positions depend on the tile size, so ``x`` and ``y`` are checked when the score is taken.
        """
        count = check_layer(self.layer, channels, repr(self))
        check_index_in_range(self.channel, "channel", self.layer, count, repr(self))

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return the batch mean of ``activations[layer][:, channel, y, x]``."""
        return self.per_position(activations, images).mean()

    def per_position(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """``activations[layer][:, channel, y, x]``: one score per tile."""
        act = fetch(activations, self.layer, repr(self))
        if act.ndim != 4:
            raise UserError(
                f"{self!r}: neuron needs a spatial (NCHW) layer, but {self.layer!r} has shape "
                f"{tuple(act.shape)}; use channel() for non-spatial layers"
            )
        height, width = act.shape[-2:]
        # Same centre convention as Lucid: the lower middle index for even sizes.
        y = height // 2 if self.y is None else self.y
        x = width // 2 if self.x is None else self.x
        if x >= width or y >= height:
            raise UserError(
                f"{self!r}: position (x={x}, y={y}) is outside layer {self.layer!r}, whose "
                f"activations are {width} wide and {height} high for this tile size; "
                f"valid positions are x in 0..{width - 1}, y in 0..{height - 1}"
            )
        return act[:, self.channel, y, x]

    def __repr__(self) -> str:
        position = "".join(
            f", {name}={value}"
            for name, value in (("x", self.x), ("y", self.y))
            if value is not None
        )
        return f"neuron({self.layer}, {self.channel}{position})"


class DeepDream(_LayerObjective):
    """Mean of the squared activations of a layer (Lucid's ``deepdream``)."""

    __slots__ = ()

    def per_position(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """The mean over channels of ``activations[layer] ** 2``, per tile and position."""
        return fetch(activations, self.layer, repr(self)).square().mean(dim=1)

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return the mean of ``activations[layer] ** 2``."""
        return self.per_position(activations, images).mean()

    def __repr__(self) -> str:
        return f"deepdream({self.layer})"


class ClassLogit(Objective):
    """Mean logit of one class over the batch, read from the ``"logits"`` output."""

    __slots__ = ("class_index",)
    class_index: int

    def __init__(self, class_index: int) -> None:
        self._set("class_index", require_index(class_index, "class_index", "class_logit"))

    def _args(self) -> tuple[Any, ...]:
        return (self.class_index,)

    @property
    def layers(self) -> frozenset[str]:
        """Just ``"logits"``, the model output."""
        return frozenset((LOGITS,))

    def validate(self, channels: Mapping[str, int]) -> None:
        """Raise UserError if the model has no logits or the class index is out of range."""
        count = check_layer(LOGITS, channels, repr(self))
        check_index_in_range(self.class_index, "class_index", LOGITS, count, repr(self), "classes")

    def per_position(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """``activations["logits"][:, class_index]``: one score per tile."""
        return fetch(activations, LOGITS, repr(self))[:, self.class_index]

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return the mean of ``activations["logits"][:, class_index]``."""
        return self.per_position(activations, images).mean()

    def __repr__(self) -> str:
        return f"class_logit({self.class_index})"


def _as_vector(vector: object) -> tuple[float, ...]:
    """Return ``vector`` as a tuple of finite floats, or raise UserError."""
    if isinstance(vector, Tensor):
        if vector.ndim != 1:
            raise UserError(f"direction: vector must be 1-D, got shape {tuple(vector.shape)}")
        vector = vector.detach().cpu().tolist()
    # str is a Sequence too, and a mapping iterates over its keys; neither is a vector.
    if isinstance(vector, (str, bytes, Mapping)) or not isinstance(vector, Sequence):
        raise UserError(f"direction: vector must be a sequence of numbers, got {vector!r}")
    values = tuple(require_finite(v, f"vector[{i}]", "direction") for i, v in enumerate(vector))
    if not values:
        raise UserError("direction: vector must not be empty")
    if not any(values):
        # The score would be identically zero and the render would silently do nothing.
        raise UserError("direction: vector must not be all zeros")
    return values


class Direction(_LayerObjective):
    """Mean over batch and positions of the dot product of the channel vector with ``vector``."""

    __slots__ = ("vector",)
    vector: tuple[float, ...]

    def __init__(self, layer: str, vector: Sequence[float] | Tensor) -> None:
        super().__init__(layer)
        self._set("vector", _as_vector(vector))

    def _args(self) -> tuple[Any, ...]:
        return (self.layer, self.vector)

    def validate(self, channels: Mapping[str, int]) -> None:
        """Raise UserError if the layer is unknown or the vector length is not its channel count."""
        count = check_layer(self.layer, channels, repr(self))
        if len(self.vector) != count:
            raise UserError(
                f"{self!r}: vector has {len(self.vector)} values but layer {self.layer!r} has "
                f"{count} channels; give exactly {count} values"
            )

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return the mean over batch and positions of ``sum_c act[:, c] * vector[c]``."""
        return self.per_position(activations, images).mean()

    def per_position(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """``sum_c act[:, c] * vector[c]`` per tile and position."""
        act = fetch(activations, self.layer, repr(self))
        if act.ndim < 2 or act.shape[1] != len(self.vector):
            raise UserError(
                f"{self!r}: vector has {len(self.vector)} values but layer {self.layer!r} has "
                f"activations of shape {tuple(act.shape)} (channels on dim 1)"
            )
        # Copied without waiting for the device: the render step must not sync.
        weights = torch.tensor(self.vector, dtype=act.dtype).to(act.device, non_blocking=True)
        weights = weights.reshape(1, -1, *([1] * (act.ndim - 2)))
        return (act * weights).sum(dim=1)

    def __repr__(self) -> str:
        if len(self.vector) <= 4:
            shown = ", ".join(f"{v:g}" for v in self.vector)
        else:
            # Direction vectors usually have hundreds of entries; keep the repr one line.
            head = ", ".join(f"{v:g}" for v in self.vector[:3])
            shown = f"{head}, ... ({len(self.vector)} values)"
        return f"direction({self.layer}, [{shown}])"


class Diversity(_LayerObjective):
    """Negative mean pairwise cosine similarity of the batch elements' Gram matrices."""

    __slots__ = ()

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return ``-mean_{i != j} cos(G_i, G_j)``: in [-1, 1], 0 for batch size 1."""
        act = fetch(activations, self.layer, repr(self))
        batch = act.shape[0]
        if batch < 2:
            return _zero_like_graph(act)
        # Float32: a Gram entry sums H*W products and overflows float16 under autocast.
        flat = act.float().reshape(batch, act.shape[1], -1)
        grams = torch.bmm(flat, flat.transpose(1, 2)).reshape(batch, -1)
        # Normalising makes the Gram comparison a cosine similarity (as Lucid's l2_normalize).
        grams = F.normalize(grams, dim=1, eps=1e-10)
        similarity = grams @ grams.T
        off_diagonal = similarity.sum() - similarity.diagonal().sum()
        return -off_diagonal / (batch * (batch - 1))

    def __repr__(self) -> str:
        return f"diversity({self.layer})"


def channel(layer: str, channel: int) -> Objective:
    """Mean activation of ``channel`` of ``layer`` over batch and space."""
    return Channel(layer, channel)


def neuron(layer: str, channel: int, x: int | None = None, y: int | None = None) -> Objective:
    """Activation of ``channel`` of ``layer`` at column ``x``, row ``y`` (default: the centre).

    ``x`` indexes width and ``y`` height, in the layer's own activation grid (not pixels); note
    that Lucid and Lucent use ``x`` for the row. The score is the mean over the tile batch, so with
    tiled rendering the neuron is the one at the centre of each tile.
    """
    return Neuron(layer, channel, x, y)


def deepdream(layer: str) -> Objective:
    """Mean of the squared activations of ``layer`` (classic DeepDream)."""
    return DeepDream(layer)


def class_logit(class_index: int) -> Objective:
    """Mean logit of class ``class_index`` over the batch (pre-softmax model output)."""
    return ClassLogit(class_index)


def direction(layer: str, vector: Sequence[float]) -> Objective:
    """Mean over batch and positions of the dot product of ``layer``'s channels with ``vector``.

    This is the plain dot product (so its scale grows with ``vector``'s norm), unlike Lucid's
    ``direction``, which averages the elementwise product over channels too (a factor of 1/C), and
    Lucent's, which uses cosine similarity.
    """
    return Direction(layer, vector)


def diversity(layer: str) -> Objective:
    """Batch diversity at ``layer``: minus the mean pairwise cosine similarity of Gram matrices.

    Higher is more diverse: -1 when all batch elements have proportional Gram matrices, 0 for a
    batch of one. Lucid divides the pairwise sum by N rather than N(N-1); this is a true mean, so
    its weight does not need retuning when the batch size changes.
    """
    return Diversity(layer)
