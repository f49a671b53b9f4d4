"""Feature accentuation: the keep term, the photo's view of each tile, the preset, the errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, assert_a_picture, tiledream

from render.config import build, compose_config
from render.errors import UserError
from render.objectives import accentuate, channel, class_logit, keep_photo, weighted_sum
from render.objectives.accentuate import on_photo
from render.run import make_renderer, make_tiling, prepare, render
from scripts.accentuate_compare import keep_distance, score
from scripts.dream_compare import load_photo

PHOTO = ROOT / "configs" / "photos" / "chelsea.jpg"


def test_keep_photo_is_minus_the_mean_distance_to_the_photos_activations() -> None:
    act = torch.zeros(2, 4, 3, 3)
    act[:, 0] = 3.0
    act[:, 1] = 4.0  # every position 5 away from the photo's zeros
    activations = {"blocks.1": act, on_photo("blocks.1"): torch.zeros_like(act)}
    images = torch.zeros(2, 3, 8, 8)
    assert float(keep_photo("blocks.1")(activations, images)) == pytest.approx(-5.0)
    assert keep_photo("blocks.1").per_position(activations, images).shape == (2, 3, 3)


def test_accentuate_is_the_target_plus_the_weighted_keep_term() -> None:
    target = class_logit(292)
    combined = accentuate(target, "blocks.2", 2.0)
    assert combined == target + 2.0 * keep_photo("blocks.2")
    assert combined.layers == {"logits", "blocks.2"} and combined.photo_layers == {"blocks.2"}
    assert accentuate(target, "blocks.2", 0.0) == target, "no keep term: the target alone"
    # A term of a sum, weighted over the canvas: the photo layers come along.
    summed = weighted_sum([{"objective": keep_photo("blocks.1"), "weight": 3.0}])
    assert summed.photo_layers == {"blocks.1"}
    assert keep_photo("blocks.1").where(torch.ones(2, 2)).photo_layers == {"blocks.1"}
    with pytest.raises(UserError, match=r"keep_weight must be >= 0.*-1"):
        accentuate(target, "blocks.2", -1.0)


@pytest.mark.parametrize("shard", [(0, 1), (1, 2)], ids=["one-process", "rank-1-of-2"])
def test_each_tile_sees_the_photo_through_its_own_transforms(shard: tuple[int, int]) -> None:
    # Started from the photo, a tile and the photo's tile look alike to the model at step 0
    # only if the photo's tile is the one at the tile's place, transformed by the same draw
    # (on any rank: each holds its own tiles of the photo).
    noise = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    photo = F.interpolate(noise, size=(96, 128), mode="bilinear").clamp(0, 1)
    cfg = compose_config(["tiling.tile_size=[64,64]", "trainer.accelerator=cpu"])
    model, param = build(cfg.model), build(cfg.param, tile_size=(64, 64))
    tiling = make_tiling(cfg.tiling, (96, 128))
    distances = []
    for reference in (photo, photo.flip(-1)):
        module = make_renderer(
            cfg,
            model,
            keep_photo("blocks.1"),
            tiling,
            param,
            seed=0,
            init_canvas=photo,
            photo=reference,
            shard=shard,
        )
        idx = torch.arange(module.own.start, module.own.stop)
        with torch.no_grad():
            pixels = param.decode(module.store.params)
            distances.append(-float(module._score(pixels, idx)))
    assert distances[0] < 1e-3 < 1.0 < distances[1]


def accentuated(folder: Path, *overrides: str) -> torch.Tensor:
    """A 64x64 render (one tile) of the shipped photo, 12 steps, as a [1, 3, H, W] tensor."""
    cfg = compose_config(
        [
            "init=image",
            f"init.path={PHOTO}",
            "objective=accentuate",
            "objective@objective.target=channel",
            "objective.target.layer=blocks.2",
            "objective.target.channel=0",
            "objective.keep_layer=blocks.1",
            "tiling.base_size=[64,64]",
            "tiling.tile_size=[64,64]",
            "render.tiles_per_step=1",
            "trainer.max_steps=12",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            *overrides,
        ]
    )
    return load_photo(render(cfg, folder), (64, 64))


@pytest.mark.slow
def test_the_keep_term_holds_the_keep_layer_near_the_photo(tmp_path: Path) -> None:
    model, photo = build(compose_config([]).model), load_photo(PHOTO, (64, 64))
    kept = accentuated(tmp_path / "kept", "objective.keep_weight=1")
    plain = accentuated(tmp_path / "plain", "objective.keep_weight=0")
    target = channel("blocks.2", 0)
    before = score(model, target, photo)
    assert score(model, target, kept) > before and score(model, target, plain) > before
    distance = [keep_distance(model, "blocks.1", image, photo) for image in (kept, plain)]
    assert distance[0] < 0.5 * distance[1]


@pytest.mark.slow
def test_the_preset_accentuates_its_photo_from_the_command_line(tmp_path: Path) -> None:
    # Through the deep dream loop's octaves: each compares with the photo at its own size.
    tiledream(
        "experiment=accentuate",
        "tiling.tile_size=[64,64]",
        "tiling.base_size=[64,96]",
        "render.octaves=2",
        "render.carry_detail=true",
        "trainer.max_steps=2",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={tmp_path}",
    )
    assert_a_picture(tmp_path / "render.png", (96, 64))
    render_png, photo = load_photo(tmp_path / "render.png", (64, 96)), load_photo(PHOTO, (64, 96))
    assert float((render_png - photo).abs().mean()) < 0.05, "two steps an octave from the photo"


def test_the_keep_term_needs_a_photo() -> None:
    cfg = compose_config(["objective=accentuate"])
    with pytest.raises(UserError, match=r"keep_photo\(blocks.2\).*init=image init.path=PHOTO"):
        prepare(cfg, build(cfg.model), build(cfg.objective))
