"""Rules for the numbers a user gives, declared on the config schema and checked at once.

A field of a schema dataclass (``render/config.py``) carries its rule in its metadata;
:func:`validate` checks every such field of a composed config before anything is built, so a
bad value is one ``error:`` line in a second, not a library's traceback minutes into a render.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from omegaconf import DictConfig, ListConfig, OmegaConf

from render.errors import UserError

#: The largest seed: Lightning seeds numpy, whose generator takes 32-bit seeds.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Number:
    """A finite number (an integer with ``integer``), bounded by any of the four limits, or one
    of the ``words`` (``auto``: a value the render works out itself).

    ``at_least``/``at_most`` are inclusive, ``above``/``below`` exclusive; ``note`` is added to
    the message (what a special value means, where a default comes from).
    """

    integer: bool = False
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    words: tuple[str, ...] = ()
    note: str = ""

    def _limits(self) -> tuple[tuple[str, str, float] | None, tuple[str, str, float] | None]:
        """The lower and upper limit as (bracket, comparison, value), or None."""
        lows = [("[", ">=", self.at_least), ("(", ">", self.above)]
        highs = [("]", "<=", self.at_most), (")", "<", self.below)]
        low = next(((b, op, v) for b, op, v in lows if v is not None), None)
        high = next(((b, op, v) for b, op, v in highs if v is not None), None)
        return low, high

    def describe(self) -> str:
        """The rule in words: ``a finite number > 0``, ``an integer in [0, 4294967295]``."""
        words = "an integer" if self.integer else "a finite number"
        low, high = self._limits()
        if low and high:
            words += f" in {low[0]}{low[2]}, {high[2]}{high[0]}"
        elif low or high:
            _, op, value = low or high  # type: ignore[misc]
            words += f" {op} {value}"
        words += "".join(f" or {word!r}" for word in self.words)
        return f"{words} ({self.note})" if self.note else words

    def holds(self, value: Any) -> bool:
        """Whether ``value`` keeps the rule."""
        if isinstance(value, str):
            return value in self.words
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if (self.integer and not isinstance(value, int)) or not math.isfinite(value):
            return False
        compare = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
        return all(compare[op](value, v) for _, op, v in filter(None, self._limits()))

    def check(self, key: str, value: Any) -> None:
        """Raise UserError naming ``key``, ``value`` and the rule unless ``value`` keeps it.

        ``None`` passes (optional keys; a mandatory one is reported when it is built).
        """
        if value is not None and not self.holds(value):
            raise UserError(f"{key} must be {self.describe()}, got {value!r}")


def rule(number: Number, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field with ``default`` (or ``default_factory=``) checked by ``number``.

    For a list field the rule applies to each element.
    """
    return dataclasses.field(default=default, metadata={"rule": number}, **kwargs)


def validate(cfg: DictConfig, extra: Mapping[str, Number] | None = None) -> None:
    """Check every field of ``cfg`` whose schema declares a rule, and ``extra`` keys of ``cfg``.

    ``extra`` covers keys outside any schema (the trainer's keyword arguments).
    """
    _validate_node(cfg, "")
    for key, number in (extra or {}).items():
        _check_value(key, OmegaConf.select(cfg, key, default=None), number)


def _validate_node(node: DictConfig, prefix: str) -> None:
    schema = OmegaConf.get_type(node)
    rules = (
        {f.name: f.metadata["rule"] for f in dataclasses.fields(schema) if "rule" in f.metadata}
        if dataclasses.is_dataclass(schema)
        else {}
    )
    for name in node:
        key = prefix + str(name)
        if OmegaConf.is_missing(node, name):
            continue
        value = node[name]
        if isinstance(value, DictConfig):
            _validate_node(value, f"{key}.")
        elif isinstance(name, str) and name in rules:  # the schema's field names are str
            _check_value(key, value, rules[name])


def _check_value(key: str, value: Any, number: Number) -> None:
    if isinstance(value, ListConfig):
        # Iterating a ListConfig of Union elements yields nodes, not values: use it as a list.
        items = cast(list[Any], OmegaConf.to_container(value, resolve=True))
        for index, item in enumerate(items):
            number.check(f"{key}[{index}]", item)
    else:
        number.check(key, value)
