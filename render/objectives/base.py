"""The composable Objective type: a differentiable score to maximise, and weighted sums of them.

An objective maps ``(activations, images)`` to a 0-d tensor. ``activations`` maps layer names to
the tensors captured for the current tile batch (``"logits"`` is the model output) and ``images``
is that batch of RGB tiles in [0, 1], NCHW, as fed to the model. The training loop minimises
``-objective(...)``, so every score here is something to make larger.

Objectives compose linearly: ``a + b``, ``a - b``, ``-a``, ``2 * a``, ``a * 2``, ``a / 2`` and
``sum([a, b])`` all give a ``WeightedSum`` whose value is the weighted sum of its terms and whose
``layers`` is the union of theirs.

``objective.where(weights)`` weights an objective over the canvas (a ``Masked`` objective, by a
weight map of render/objectives/spatial.py); such objectives are ``spatial`` and are scored with
``evaluate(activations, images, points)``, ``points`` being where on the canvas each pixel of
the images lies.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from render.errors import UserError
from render.objectives.spatial import WeightMap, as_weight_map, weights_like

__all__ = ["Masked", "Objective", "WeightedSum", "combine"]


def _scalar(value: object) -> float | None:
    """Return ``value`` as a float if it can scale an objective, else None (-> NotImplemented)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    result = float(value)
    if not math.isfinite(result):
        # A NaN or infinite weight would poison every gradient of the render; fail at build time.
        raise UserError(f"an objective's weight must be a finite number, got {result}")
    return result


def _is_zero(value: object) -> bool:
    """True for a plain number equal to zero: the start value of built-in ``sum``."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and value == 0


class Objective(abc.ABC):
    """A differentiable score to maximise, computed from layer activations and the input images."""

    # Objectives are immutable values compared by their constructor arguments. They are plain
    # classes, not dataclasses, on purpose: OmegaConf turns dataclass instances into DictConfigs
    # when Hydra stores an instantiated objective inside a config container (e.g. the terms of
    # weighted_sum), which would silently replace the objective by a dict of its fields.
    __slots__ = ()

    @abc.abstractmethod
    def _args(self) -> tuple[Any, ...]:
        """Return the constructor arguments; equality, hashing and pickling are defined by them."""

    def _set(self, name: str, value: object) -> None:
        # __setattr__ is blocked to keep objectives immutable; constructors set fields through this.
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"objectives are immutable; cannot set {name!r} on {self!r}")

    def __eq__(self, other: object) -> bool:
        # The type test implies isinstance; mypy 1.10 narrows `other` by isinstance alone.
        if type(other) is not type(self) or not isinstance(other, Objective):
            return NotImplemented
        return self._args() == other._args()

    def __hash__(self) -> int:
        return hash((type(self), self._args()))

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through the constructor: the default slot-state pickling would hit __setattr__.
        return (type(self), self._args())

    @property
    @abc.abstractmethod
    def layers(self) -> frozenset[str]:
        """Names of the layers whose activations this objective reads."""

    @property
    def photo_layers(self) -> frozenset[str]:
        """Layers whose activations on the initial photo this objective also reads (under
        :func:`render.objectives.accentuate.on_photo` names; see ``keep_photo``).
        """
        return frozenset()

    @abc.abstractmethod
    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return the 0-d score of this tile batch; higher is better."""

    @abc.abstractmethod
    def __repr__(self) -> str:
        """Return a readable expression such as ``channel(blocks.3, 5)``."""

    def validate(self, channels: Mapping[str, int]) -> None:  # noqa: B027 - optional hook
        """Raise UserError if a layer is unknown or an index is out of range for ``channels``."""
        # Deliberately not abstract: objectives that read only the images have nothing to check.

    def terms(self) -> tuple[tuple[float, Objective], ...]:
        """Return ``(weight, objective)`` pairs whose weighted sum is this objective."""
        return ((1.0, self),)

    # Objectives over the canvas (render/objectives/spatial.py).

    @property
    def spatial(self) -> bool:
        """Whether the score depends on where the tiles are on the canvas (see :meth:`where`)."""
        return False

    def evaluate(
        self, activations: Mapping[str, Tensor], images: Tensor, points: Tensor | None
    ) -> Tensor:
        """The score, given the canvas points ``[n, h, w, 2]`` of the images (spatial ones)."""
        return self(activations, images)

    def per_position(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Scores ``[n]`` per tile, or ``[n, h, w]`` per activation position, whose mean is the
        score. By default the score of each tile on its own; objectives with a cheaper or finer
        form override it.
        """
        return torch.stack(
            [
                self({name: act[i : i + 1] for name, act in activations.items()}, images[i : i + 1])
                for i in range(images.shape[0])
            ]
        )

    def where(self, weights: object) -> Objective:
        """This objective, weighted over the canvas by ``weights`` (a ``WeightMap`` or a 2-D
        tensor stretched over the canvas): ``channel(...).where(Box(x=(0, 0.5)))``.
        """
        return Masked(self, as_weight_map(weights))

    # Composition. Operators return NotImplemented for operands they do not understand so that
    # Python raises its usual TypeError (e.g. for ``a * b`` of two objectives, which is not linear).

    def __add__(self, other: object) -> Objective:
        if isinstance(other, Objective):
            return combine((*self.terms(), *other.terms()))
        if _is_zero(other):
            return self
        return NotImplemented

    def __radd__(self, other: object) -> Objective:
        # Built-in sum() starts from the integer 0.
        if _is_zero(other):
            return self
        return NotImplemented

    def __sub__(self, other: object) -> Objective:
        if isinstance(other, Objective):
            return combine((*self.terms(), *((-w, t) for w, t in other.terms())))
        if _is_zero(other):
            return self
        return NotImplemented

    def __neg__(self) -> Objective:
        return self._scaled(-1.0)

    def __pos__(self) -> Objective:
        return self

    def __mul__(self, other: object) -> Objective:
        factor = _scalar(other)
        if factor is None:
            return NotImplemented
        return self._scaled(factor)

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> Objective:
        divisor = _scalar(other)
        if divisor is None:
            return NotImplemented
        if divisor == 0:
            raise ZeroDivisionError(f"cannot divide the objective {self!r} by zero")
        return self._scaled(1.0 / divisor)

    def _scaled(self, factor: float) -> Objective:
        return combine(tuple((factor * w, t) for w, t in self.terms()))


def _format_weight(weight: float) -> str:
    # %g keeps reprs short (0.1 * 3 shows as 0.3, not 0.30000000000000004).
    return f"{weight:g}"


class WeightedSum(Objective):
    """A weighted sum of leaf objectives, built by the arithmetic operators or ``weighted_sum``."""

    __slots__ = ("weighted_terms",)
    weighted_terms: tuple[tuple[float, Objective], ...]

    def __init__(self, weighted_terms: Iterable[tuple[float, Objective]]) -> None:
        terms = tuple((float(weight), term) for weight, term in weighted_terms)
        if not terms:
            raise ValueError("a WeightedSum needs at least one term")
        for weight, term in terms:
            if not isinstance(term, Objective) or isinstance(term, WeightedSum):
                # Sums are kept flat so that reprs and terms() stay simple; combine() flattens.
                raise TypeError(f"WeightedSum terms must be leaf objectives, got {term!r}")
            if not math.isfinite(weight):
                raise UserError(f"an objective's weight must be a finite number, got {weight}")
        self._set("weighted_terms", terms)

    def _args(self) -> tuple[Any, ...]:
        return (self.weighted_terms,)

    @property
    def layers(self) -> frozenset[str]:
        """Union of the layers of all terms."""
        return frozenset().union(*(term.layers for _, term in self.weighted_terms))

    @property
    def photo_layers(self) -> frozenset[str]:
        """Union of the photo layers of all terms."""
        return frozenset().union(*(term.photo_layers for _, term in self.weighted_terms))

    def terms(self) -> tuple[tuple[float, Objective], ...]:
        """Return the flat ``(weight, leaf objective)`` pairs of this sum."""
        return self.weighted_terms

    def validate(self, channels: Mapping[str, int]) -> None:
        """Validate every term against the model's ``channels``."""
        for _, term in self.weighted_terms:
            term.validate(channels)

    @property
    def spatial(self) -> bool:
        """Whether any term depends on where the tiles are."""
        return any(term.spatial for _, term in self.weighted_terms)

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return the weighted sum of the terms' scores."""
        return self.evaluate(activations, images, None)

    def evaluate(
        self, activations: Mapping[str, Tensor], images: Tensor, points: Tensor | None
    ) -> Tensor:
        """Return the weighted sum of the terms' scores at the canvas ``points``."""
        total: Tensor | None = None
        for weight, term in self.weighted_terms:
            value = term.evaluate(activations, images, points)
            if weight != 1.0:
                value = value * weight
            total = value if total is None else total + value
        assert total is not None  # __post_init__ guarantees at least one term
        return total

    def where(self, weights: object) -> Objective:
        """Every term weighted over the canvas by ``weights``."""
        return combine((w, term.where(weights)) for w, term in self.weighted_terms)

    def __repr__(self) -> str:
        parts: list[str] = []
        for index, (weight, term) in enumerate(self.weighted_terms):
            magnitude = abs(weight)
            body = repr(term) if magnitude == 1.0 else f"{_format_weight(magnitude)} * {term!r}"
            if index == 0:
                parts.append(f"-{body}" if weight < 0 else body)
            else:
                parts.append(f" - {body}" if weight < 0 else f" + {body}")
        return "".join(parts)


def combine(terms: Iterable[tuple[float, Objective]]) -> Objective:
    """Return the objective ``sum(weight * term)``, flattening nested sums.

    A single term of weight 1 is returned as itself, so ``-(-a)`` is ``a`` again.
    """
    flat: list[tuple[float, Objective]] = []
    for weight, term in terms:
        flat.extend((weight * inner_weight, inner) for inner_weight, inner in term.terms())
    if len(flat) == 1 and flat[0][0] == 1.0:
        return flat[0][1]
    return WeightedSum(tuple(flat))


class Masked(Objective):
    """An objective weighted over the canvas by a :class:`WeightMap` (``objective.where(map)``)."""

    __slots__ = ("objective", "weights")
    objective: Objective
    weights: WeightMap

    def __init__(self, objective: Objective, weights: WeightMap) -> None:
        """``objective`` (a leaf) counts at each canvas point with the weight ``weights`` gives."""
        self._set("objective", objective)
        self._set("weights", weights)

    def _args(self) -> tuple[Any, ...]:
        return (self.objective, self.weights)

    @property
    def layers(self) -> frozenset[str]:
        """The layers of the weighted objective."""
        return self.objective.layers

    @property
    def photo_layers(self) -> frozenset[str]:
        """The photo layers of the weighted objective."""
        return self.objective.photo_layers

    @property
    def spatial(self) -> bool:
        """True: scores need the canvas points of the tiles."""
        return True

    def validate(self, channels: Mapping[str, int]) -> None:
        """Validate the weighted objective."""
        self.objective.validate(channels)

    def evaluate(
        self, activations: Mapping[str, Tensor], images: Tensor, points: Tensor | None
    ) -> Tensor:
        """Mean over tiles and positions of the score map times the weights at ``points``."""
        if points is None:
            raise ValueError(f"{self!r} needs the canvas points of the tiles (see canvas_points)")
        values = self.objective.per_position(activations, images)
        if values.ndim != 3:
            # Scores without a grid of positions (tokens, say) count per tile.
            values = values.reshape(values.shape[0], -1).mean(dim=1)
        return (values * weights_like(self.weights, points, values)).mean()

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Not defined without canvas points: use :meth:`evaluate`."""
        return self.evaluate(activations, images, None)

    def where(self, weights: object) -> Objective:
        """The same objective weighted by both maps."""
        return Masked(self.objective, self.weights * as_weight_map(weights))

    def __repr__(self) -> str:
        return f"{self.objective!r}.where({self.weights!r})"
