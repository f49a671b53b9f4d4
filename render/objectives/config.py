"""``weighted_sum``: build a composite objective from a list of config terms (for Hydra)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from render.errors import UserError
from render.objectives.base import Objective, combine
from render.objectives.checks import require_finite, require_objective

__all__ = ["weighted_sum"]

_KEYS = ("objective", "weight")


def _term(index: int, term: object) -> tuple[float, Objective]:
    """Return the ``(weight, objective)`` pair of one config term, or raise UserError."""
    where = f"weighted_sum: terms[{index}]"
    if isinstance(term, Objective):
        # A bare objective in the list is a convenience: weight 1.
        return 1.0, term
    if not isinstance(term, Mapping):
        raise UserError(
            f"{where} must be a mapping with keys 'objective' and 'weight', got {term!r}"
        )
    for key in term:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"{where} has unknown key {key!r}; {hint}valid keys: objective, weight")
    if "objective" not in term:
        raise UserError(f"{where} has no 'objective'; valid keys: objective, weight")
    objective = require_objective(term["objective"], f"{where}.objective")
    weight = require_finite(term.get("weight", 1.0), "weight", where)
    return weight, objective


def weighted_sum(terms: Sequence[Mapping[str, Any]]) -> Objective:
    """Sum of ``weight * objective`` over ``terms``, each ``{objective: ..., weight: 1.0}``."""
    # A mapping or string here is a config slip (e.g. terms written as a dict, not a list).
    if isinstance(terms, (str, bytes, Mapping)) or not isinstance(terms, Sequence):
        raise UserError(
            f"weighted_sum: terms must be a list of {{objective, weight}} mappings, got {terms!r}"
        )
    if len(terms) == 0:
        raise UserError("weighted_sum: terms must not be empty; give at least one objective")
    return combine(_term(index, term) for index, term in enumerate(terms))
