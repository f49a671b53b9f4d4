"""ClassLayout: which class a class render asks for in each window of its canvas."""

from __future__ import annotations

from render.objectives import atlas, channel, class_logit, interpolate, total_variation
from render.objectives.class_layout import ClassLayout

GOLDFISH, BEE = 1, 309


def test_one_class_is_every_windows_class() -> None:
    layout = ClassLayout.of(class_logit(GOLDFISH))
    assert layout is not None and layout.classes == (GOLDFISH,)
    assert layout.expected((64, 96), 2) == [frozenset({GOLDFISH})] * 6  # 2x3 square windows


def test_an_interpolation_asks_each_end_for_its_class_and_the_middle_for_both() -> None:
    layout = ClassLayout.of(interpolate(class_logit(GOLDFISH), class_logit(BEE)))
    assert layout is not None and layout.classes == (GOLDFISH, BEE)
    # Square windows: the thirds, the middle weighing both alike; then 2x6, row after row.
    left, right, both = frozenset({GOLDFISH}), frozenset({BEE}), frozenset({GOLDFISH, BEE})
    assert layout.expected((512, 1536), 1) == [left, both, right]
    assert layout.expected((512, 1536), 2) == ([left] * 3 + [right] * 3) * 2
    assert layout.expected((512, 512), 1) == [both]
    vertical = ClassLayout.of(interpolate(class_logit(GOLDFISH), class_logit(BEE), axis="y"))
    assert vertical is not None
    assert vertical.expected((512, 512), 2) == [left, left, right, right]


def test_an_atlas_asks_each_cell_for_its_class() -> None:
    cells = [class_logit(c) for c in (1, 2, 3, 4)]
    layout = ClassLayout.of(atlas(cells, grid=[2, 2]))
    assert layout is not None and layout.classes == (1, 2, 3, 4)
    assert layout.expected((400, 400), 2) == [frozenset({c}) for c in (1, 2, 3, 4)]
    # Windows of a quarter of a cell lie in that cell.
    assert layout.expected((400, 400), 4)[:4] == [frozenset({c}) for c in (1, 1, 2, 2)]


def test_objectives_that_are_not_class_logits_have_no_layout() -> None:
    assert ClassLayout.of(channel("blocks.3", 1)) is None
    assert ClassLayout.of(class_logit(GOLDFISH) - 0.1 * total_variation()) is None
    assert ClassLayout.of(interpolate(class_logit(GOLDFISH), channel("blocks.3", 1))) is None
