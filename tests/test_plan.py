"""The plan of a render: a pyramid by default, user octaves win, a step budget per tile."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from render import batching
from render.config import register_configs
from render.errors import UserError
from render.plan import (
    DREAM_OCTAVE_SCALE,
    MAX_PYRAMID_SCALE,
    octave_schedule,
    octave_sizes,
    pyramid_schedule,
    steps_for,
    updates_per_tile,
)
from render.run import context_sizes, make_plan

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")


def compose_render(*overrides: str):
    """The config of a CPU render, with render.tiles_per_step as the render resolves it."""
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("render", overrides=["trainer.accelerator=cpu", *overrides])
    cfg.render.tiles_per_step = batching.tiles_per_step(cfg, None, None, tiles=1, world=1)
    return cfg


def pyramid(base, tile=(224, 224)):
    octaves, scale = pyramid_schedule(base, tile)
    return octave_sizes(base, list(tile), octaves, scale)


@pytest.mark.parametrize(
    "base", [(448, 448), (672, 672), (1024, 1024), (4096, 4096), (768, 1344), (300, 900)]
)
def test_pyramid_starts_at_about_one_tile_and_grows_at_most_2x(base):
    sizes = pyramid(base)
    assert sizes[-1] == base
    first = min(s / t for s, t in zip(sizes[0], (224, 224), strict=True))
    assert first == pytest.approx(1, abs=0.01)
    for small, large in itertools.pairwise(sizes):
        assert all(b / a <= MAX_PYRAMID_SCALE + 0.01 for a, b in zip(small, large, strict=True))
        assert all(b > a for a, b in zip(small, large, strict=True))
    # The aspect ratio holds at every octave.
    for size in sizes:
        assert size[1] / size[0] == pytest.approx(base[1] / base[0], rel=0.02)


def test_pyramid_examples():
    assert pyramid((448, 448)) == [(224, 224), (448, 448)]
    assert pyramid((1024, 1024)) == [(224, 224), (372, 372), (617, 617), (1024, 1024)]
    assert pyramid_schedule((224, 224), (224, 224)) == (1, MAX_PYRAMID_SCALE)
    assert pyramid_schedule((230, 600), (224, 224))[0] == 1  # within 5% of a tile


def test_user_octaves_win_and_photos_keep_deep_dreams_schedule():
    base, tile = (1024, 1024), (224, 224)
    assert octave_schedule(base, tile, 1, None, from_image=False)[0] == 1
    assert octave_schedule(base, tile, 3, 1.5, from_image=False) == (3, 1.5)
    octaves, scale = octave_schedule(base, tile, 6, None, from_image=False)
    assert octaves == 6 and octave_sizes(base, list(tile), octaves, scale)[0] == (224, 224)
    assert octave_schedule(base, tile, 2, None, from_image=False) == (2, MAX_PYRAMID_SCALE)
    octaves, scale = octave_schedule(base, tile, None, 1.4, from_image=False)
    assert scale == 1.4 and 1.4 ** (octaves - 1) >= 1024 / 224 > 1.4 ** (octaves - 2)
    assert octave_schedule(base, tile, None, None, from_image=True) == (1, DREAM_OCTAVE_SCALE)
    assert octave_schedule(base, tile, 4, None, from_image=True) == (4, DREAM_OCTAVE_SCALE)
    with pytest.raises(UserError, match=r"render.octave_scale must be > 1, got 0\.9"):
        octave_schedule(base, tile, None, 0.9, from_image=False)


def test_steps_give_every_tile_its_updates():
    assert steps_for(9, 3, 50) == 150
    assert steps_for(1, 3, 50) == 50  # one tile: batches of one
    assert steps_for(36, 3, 50) == 600
    assert steps_for(36, 3, 0.5) == 6
    assert steps_for(9, 2, 10, world_size=2) == 30  # shards of 5 and 4, batches 2+2+1
    assert updates_per_tile(9, 3, 150) == 50
    for bad in (0, -1, math.inf):
        with pytest.raises(UserError, match=r"render.updates_per_tile must be a number > 0"):
            steps_for(9, 3, bad)


def test_the_default_config_plans_a_pyramid_with_a_budget_per_tile():
    plan = make_plan(compose_render(), (448, 448), from_image=False)
    assert [o.size for o in plan] == [(224, 224), (448, 448)]
    assert [o.tiles for o in plan] == [1, 9]
    assert [o.steps for o in plan] == [50, 150]
    assert all(o.updates_per_tile == 50 for o in plan)
    # The time grows with the tiles: a 4x larger canvas, about 4x the steps at full size.
    big = make_plan(compose_render("render.updates_per_tile=10"), (1024, 1024), from_image=False)
    assert [o.tiles for o in big] == [1, 4, 16, 36]
    assert [o.steps for o in big] == [10, 20, 60, 120]


def test_update_decay_gives_each_finer_octave_a_share_of_the_updates_before_it():
    plan = make_plan(compose_render("render.update_decay=0.5"), (1024, 1024), from_image=False)
    assert [o.updates_per_tile for o in plan] == [50, 25, 12.5, 6.25]
    assert [o.steps for o in plan] == [50, 50, 75, 75]  # 1, 4, 16, 36 tiles, 3 per step
    same = make_plan(compose_render("render.update_decay=1"), (1024, 1024), from_image=False)
    assert same == make_plan(compose_render(), (1024, 1024), from_image=False)


def test_the_finest_octave_of_a_pyramid_runs_finest_updates_times_its_share():
    overrides = ("render.finest_updates=2", "render.update_decay=0.5")
    plan = make_plan(compose_render(*overrides), (1024, 1024), from_image=False)
    assert [o.updates_per_tile for o in plan] == [50, 25, 12.5, 12.5]
    alone = make_plan(compose_render(*overrides, "render.octaves=1"), (1024, 1024), False)
    assert [o.updates_per_tile for o in alone] == [50], "one octave is no pyramid's finest"
    deep = make_plan(compose_render(), (2048, 2048), from_image=False)
    assert [o.updates_per_tile for o in deep] == [50, 50, 50, 50, 60], "null: 1.2 when deep"
    shallow = make_plan(compose_render(), (1792, 1792), from_image=False)
    assert [o.updates_per_tile for o in shallow] == [50, 50, 50, 50], "null: 1 up to 8x"


def test_every_octave_after_the_first_scores_context_views_unless_turned_off():
    plan = make_plan(compose_render(), (1024, 1024), from_image=False)
    assert [o.views for o in plan] == [1, 2, 2, 2]
    off = make_plan(compose_render("render.context=false"), (1024, 1024), from_image=False)
    assert [o.views for o in off] == [1, 1, 1, 1]
    assert [o.steps for o in off] == [o.steps for o in plan], "the same updates per tile"
    photo = make_plan(compose_render("render.octaves=3"), (1024, 1024), from_image=True)
    assert [o.views for o in photo] == [1, 1, 1], "a photo's dream keeps the photo's composition"


def test_context_scales_give_each_octave_its_thumbnail_sizes_in_turn_order():
    first, own = (224, 224), (2048, 2048)
    shallow, deep = (1792, 1792), (2048, 2048)  # 4 and 5 octaves from 224
    assert context_sizes(compose_render(), first, own, shallow) == [first], "octave 1's alone"
    middle = [first, (465, 465), own]
    assert context_sizes(compose_render(), first, own, deep) == middle, "and a middle scale"
    small = (390, 390)  # octave 2 of that pyramid: the scales are the whole pyramid's
    assert context_sizes(compose_render(), first, small, deep) == [first, (269, 269), small]
    given = compose_render("render.context_scales=[0.0]")
    assert context_sizes(given, first, own, deep) == [first], "given scales win at any depth"
    mixed = compose_render("render.context_scales=[0.0,0.5,1.0]")
    assert context_sizes(mixed, first, own, shallow) == [first, (677, 677), own]
    with pytest.raises(UserError, match=r"render.context_scales must list at least one"):
        context_sizes(compose_render("render.context_scales=[]"), first, own, shallow)


def test_trainer_max_steps_sets_every_octave_and_octaves_can_be_forced():
    plan = make_plan(compose_render("trainer.max_steps=7"), (448, 448), from_image=False)
    assert [o.steps for o in plan] == [7, 7]
    single = make_plan(compose_render("render.octaves=1"), (448, 448), from_image=False)
    assert [(o.size, o.steps) for o in single] == [((448, 448), 150)]
    photo = make_plan(compose_render(), (448, 448), from_image=True)
    assert len(photo) == 1


def test_the_deep_dream_preset_is_the_classic_loop_in_config():
    cfg = compose_render("experiment=deepdream_photo", "init.path=photo.png")
    assert cfg.optim._target_ == "render.optim.NormalizedSGD"
    assert cfg.render.carry_detail is True
    assert (cfg.render.octaves, cfg.render.octave_scale) == (4, 1.4)
    assert cfg.param._target_ == "render.params.PixelParam" and cfg.param.decorrelate is False
    assert cfg.tiling.base_size is None  # the photo's size unless given
