"""Objectives that change across the canvas: weight maps, canvas points, layouts, the mask."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from conftest import DDP, ROOT, coordinate_canvas, run_render, tiledream
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from render.errors import UserError
from render.models import efficientnet_lite0
from render.objectives import (
    Box,
    ImageMap,
    Masked,
    atlas,
    atlas_from_config,
    channel,
    class_logit,
    deepdream,
    interpolate,
    mask,
    total_variation,
)
from render.objectives.mask import read_mask
from render.objectives.spatial import canvas_points
from render.transforms import NoTransforms, RobustnessTransforms
from tiling import TilingModule

LAYER = "blocks.3"
ORANGE, BLUE = (255, 128, 0), (0, 64, 255)


def _points(height: int, width: int, n: int = 1) -> torch.Tensor:
    """Random canvas points [n, height, width, 2]."""
    return torch.rand(n, height, width, 2, generator=torch.Generator().manual_seed(height))


def _weights(objective) -> list:
    return [term.weights for _, term in objective.terms()]


# --- weight maps ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 5),
    columns=st.integers(1, 5),
    blend=st.floats(0, 1),
    extra=st.integers(0, 3),
)
def test_atlas_cells_sum_to_one_everywhere_and_stay_in_0_1(rows, columns, blend, extra) -> None:
    count = max(1, rows * columns - extra)
    cells = [channel(LAYER, i) for i in range(count)]
    maps = _weights(atlas(cells, [rows, columns], blend))
    points = _points(17, 23) * 1.2 - 0.1  # a little past the canvas edges too
    total = sum(m(points) for m in maps)
    assert all(((m(points) >= 0) & (m(points) <= 1)).all() for m in maps)
    if count == rows * columns:
        torch.testing.assert_close(total, torch.ones_like(total))
    else:
        assert (total <= 1 + 1e-6).all()


def test_atlas_cells_are_their_own_in_their_middle_and_cross_fade_at_borders() -> None:
    maps = _weights(atlas([channel(LAYER, i) for i in range(4)], [2, 2], blend=0.5))
    middles = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    # Row by row from the top left; each cell holds its middle alone.
    torch.testing.assert_close(torch.stack([m(middles) for m in maps]), torch.eye(4))
    border = torch.tensor([[0.5, 0.25]])  # between cells 0 and 1
    assert maps[0](border).item() == pytest.approx(0.5) == maps[1](border).item()
    # The ramp spans half a cell: a quarter of a cell from the border it is 1/4 : 3/4 ...
    torch.testing.assert_close(maps[1](torch.tensor([[0.5 + 0.0625, 0.25]])), torch.tensor([0.75]))
    # ... and beyond it, hard.
    assert maps[1](torch.tensor([[0.5 + 0.126, 0.25]])).item() == 1.0


@pytest.mark.parametrize("axis", ["x", "y"])
def test_interpolate_weights_are_linear_from_edge_to_edge(axis: str) -> None:
    start, end = _weights(interpolate(channel(LAYER, 0), channel(LAYER, 1), axis, transition=1))
    points = _points(9, 11)
    along = points[..., "xy".index(axis)]
    torch.testing.assert_close(start(points), 1 - along)
    torch.testing.assert_close(end(points), along)


@settings(max_examples=30, deadline=None)
@given(transition=st.just(0.0) | st.floats(0.01, 1))
def test_interpolate_cross_fades_over_the_middle_transition_only(transition: float) -> None:
    start, end = _weights(interpolate(channel(LAYER, 0), channel(LAYER, 1), transition=transition))
    points = _points(13, 7) * 1.2 - 0.1  # a little past the canvas edges too
    x, weight = points[..., 0], end(points)
    torch.testing.assert_close(start(points) + weight, torch.ones_like(weight))
    # Each end shows its objective alone; the middle ramps linearly from 0 to 1.
    assert (weight[x < 0.5 - transition / 2] == 0).all()
    assert (weight[x >= 0.5 + transition / 2] == 1).all()
    ramp = (x > 0.5 - transition / 2) & (x < 0.5 + transition / 2)
    torch.testing.assert_close(weight[ramp], (x[ramp] - 0.5) / transition + 0.5)


def test_image_map_is_stretched_over_the_canvas_and_clamped_past_it() -> None:
    values = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    image = ImageMap(values)
    centres = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    torch.testing.assert_close(image(centres), values.flatten())
    torch.testing.assert_close(
        image(torch.tensor([[0.5, 0.5], [-0.3, 1.4]])), torch.tensor([1.5, 2.0])
    )


# --- canvas points -------------------------------------------------------------------------


def test_canvas_points_without_transforms_are_the_tiles_pixel_centres() -> None:
    starts = torch.tensor([[0, 0], [20, 30]])
    points = canvas_points(NoTransforms(), starts, (8, 10), (40, 60), torch.Generator())
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(10.0), indexing="ij")
    for tile, (y0, x0) in enumerate(starts.tolist()):
        torch.testing.assert_close(points[tile, ..., 0], (x0 + cols + 0.5) / 60)
        torch.testing.assert_close(points[tile, ..., 1], (y0 + rows + 0.5) / 40)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 3))
def test_canvas_points_follow_each_tiles_jitter_scale_and_rotation(seed: int, n: int) -> None:
    # A canvas whose pixels hold their own (x, y) canvas coordinates: after the transforms, a
    # pixel the model sees must hold the point canvas_points gives for it (bilinear sampling of
    # a linear ramp is exact).
    height, width, tile = 40, 56, 24
    tiling = TilingModule(
        tile_size=[tile, tile], tile_overlap=[0.25, 0.25], base_size=[height, width]
    )
    canvas = coordinate_canvas(height, width)
    idx = torch.randperm(tiling.num_tiles(), generator=torch.Generator().manual_seed(seed))[:n]
    tiles = tiling.split_into_tiles(canvas)[idx]
    transforms = RobustnessTransforms(pad=6, jitter=4, final_jitter=2)
    seen = transforms(tiles, torch.Generator().manual_seed(seed))
    starts = torch.tensor(tiling.tile_coords())[idx]
    points = canvas_points(
        transforms, starts, (tile, tile), (height, width), torch.Generator().manual_seed(seed)
    ).double()
    # Compare where the model sees the tile itself, not the grey padding around it.
    local = (points * torch.tensor([width, height]) - starts.flip(-1)[:, None, None]) / tile
    inside = ((local > 0.05) & (local < 0.95)).all(dim=-1)
    assert inside.sum() > 0.3 * inside.numel()
    torch.testing.assert_close(
        seen[:, :2].permute(0, 2, 3, 1)[inside], points[inside], atol=1e-5, rtol=0
    )


def test_overlapping_tiles_read_the_same_weights_where_they_overlap() -> None:
    tiling = TilingModule(tile_size=[32, 32], tile_overlap=[0.5, 0.5], base_size=[48, 80])
    starts = torch.tensor(tiling.tile_coords())
    points = canvas_points(NoTransforms(), starts, (32, 32), (48, 80), torch.Generator())
    weights = _weights(interpolate(channel(LAYER, 0), channel(LAYER, 1)))[1](points)
    (y0, x0), (y1, x1) = starts[0].tolist(), starts[1].tolist()  # two neighbours in a row
    assert y0 == y1 and x0 < x1 < x0 + 32
    torch.testing.assert_close(weights[0][:, x1 - x0 :], weights[1][:, : 32 - (x1 - x0)])


@pytest.mark.parametrize("axis", ["x", "y"])
def test_every_octave_reads_the_same_map_at_the_same_place(axis: str) -> None:
    # The tiles of a small and a large canvas: the mean weight of each column (row) of the
    # canvas follows the canvas coordinate, whatever the size.
    maps = _weights(interpolate(channel(LAYER, 0), channel(LAYER, 1), axis, transition=1))
    for size in ([32, 96], [64, 192]):
        if axis == "y":
            size = size[::-1]
        tiling = TilingModule(tile_size=[24, 24], tile_overlap=[0.25, 0.25], base_size=size)
        starts = torch.tensor(tiling.tile_coords())
        points = canvas_points(NoTransforms(), starts, (24, 24), tuple(size), torch.Generator())
        canvas = tiling.rebuild_with_masks(maps[1](points)[:, None].expand(-1, 3, -1, -1))[0, 0]
        line = canvas.mean(dim=0 if axis == "x" else 1)
        expected = (torch.arange(len(line)) + 0.5) / len(line)
        torch.testing.assert_close(line, expected)


# --- masked objectives ---------------------------------------------------------------------


def _activations(batch: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        LAYER: torch.randn(batch, 8, 4, 6, generator=generator),
        "logits": torch.randn(batch, 10, generator=generator),
    }


def test_a_positional_objective_is_weighted_per_activation_position() -> None:
    acts, images = _activations(), torch.rand(2, 3, 8, 12)
    points = canvas_points(
        NoTransforms(), torch.tensor([[0, 0], [0, 12]]), (8, 12), (8, 24), torch.Generator()
    )
    score = channel(LAYER, 5).where(Box(x=(0.5, math.inf))).evaluate(acts, images, points)
    # Tile 0 is the left half (weight 0), tile 1 the right half (weight 1).
    torch.testing.assert_close(score, acts[LAYER][1, 5].sum() / acts[LAYER][:, 5].numel())
    ramp = _weights(interpolate(channel(LAYER, 5), channel(LAYER, 5), transition=1))[1]
    score = channel(LAYER, 5).where(ramp).evaluate(acts, images, points)
    # Each position of a 4x6 grid over a 8x12 tile covers 2x2 pixels: its mean x is the ramp's.
    x = (torch.tensor([0, 12])[:, None] + torch.arange(6) * 2 + 1) / 24
    expected = (acts[LAYER][:, 5] * x[:, None, :]).mean()
    torch.testing.assert_close(score, expected)


def test_a_class_logit_is_weighted_per_tile_by_the_map_under_it() -> None:
    acts, images = _activations(), torch.rand(2, 3, 8, 12)
    points = canvas_points(
        NoTransforms(), torch.tensor([[0, 0], [0, 12]]), (8, 12), (8, 24), torch.Generator()
    )
    ramp = _weights(interpolate(class_logit(3), class_logit(3), transition=1))[1]
    score = class_logit(3).where(ramp).evaluate(acts, images, points)
    torch.testing.assert_close(score, (acts["logits"][:, 3] * torch.tensor([0.25, 0.75])).mean())


def test_scores_without_a_grid_of_positions_are_weighted_per_tile() -> None:
    tokens = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(1))  # [n, C, L]
    points = canvas_points(
        NoTransforms(), torch.tensor([[0, 0], [0, 12]]), (8, 12), (8, 24), torch.Generator()
    )
    score = (
        channel("tokens", 1)
        .where(Box(x=(0.5, math.inf)))
        .evaluate({"tokens": tokens}, torch.rand(2, 3, 8, 12), points)
    )
    torch.testing.assert_close(score, tokens[1, 1].mean() / 2)


@pytest.mark.parametrize(
    "objective",
    [
        channel(LAYER, 2),
        class_logit(4),
        deepdream(LAYER),
        channel(LAYER, 1) + 0.1 * total_variation(),
    ],
    ids=repr,
)
def test_weights_that_sum_to_one_give_back_the_objective(objective) -> None:
    acts, images = _activations(), torch.rand(2, 3, 8, 12)
    points = _points(8, 12, n=2)
    for layout in (
        interpolate(objective, objective, "y"),
        atlas([objective] * 6, [2, 3], 0.7),
    ):
        assert layout.spatial and not objective.spatial
        torch.testing.assert_close(layout.evaluate(acts, images, points), objective(acts, images))


def test_where_distributes_over_sums_multiplies_maps_and_survives_pickling() -> None:
    left, top = Box(x=(-math.inf, 0.5)), Box(y=(-math.inf, 0.5))
    a, b = channel(LAYER, 0), class_logit(1)
    assert (a + 2 * b).where(left) == a.where(left) + 2 * b.where(left)
    both = a.where(left).where(top)
    assert isinstance(both, Masked) and both.objective == a
    point = torch.tensor([[0.25, 0.25], [0.25, 0.75]])
    torch.testing.assert_close(both.weights(point), torch.tensor([1.0, 0.0]))
    image = a.where(torch.ones(3, 4))
    for objective in (both, image, interpolate(a, b), atlas([a, b])):
        assert pickle.loads(pickle.dumps(objective)) == objective
    assert image.layers == a.layers and "where" in repr(image)
    with pytest.raises(ValueError, match="canvas points"):
        both(_activations(), torch.rand(2, 3, 8, 12))


def test_atlas_from_config_builds_channels_classes_or_cells() -> None:
    channels = atlas_from_config(layer=LAYER, channels="range(2, 8, 2)")
    assert [t.objective for _, t in channels.terms()] == [channel(LAYER, c) for c in (2, 4, 6)]
    classes = atlas_from_config(classes=[1, 309], grid=[1, 2])
    assert [t.objective for _, t in classes.terms()] == [class_logit(1), class_logit(309)]
    cells = atlas_from_config(cells=[deepdream(LAYER)])
    assert cells == deepdream(LAYER).where(Box(soft=(0.5, 0.5)))


# --- the mask ------------------------------------------------------------------------------


def _mask_png(path: Path, soft: bool = True, extra: tuple[int, int, int] | None = None) -> Path:
    """Orange on the left, blue on the right of 8x16 pixels; a mixed column between if soft."""
    pixels = torch.tensor(ORANGE).repeat(8, 16, 1)
    pixels[:, 8:] = torch.tensor(BLUE)
    if soft:
        pixels[:, 8] = (torch.tensor(ORANGE) + torch.tensor(BLUE)) // 2
    if extra is not None:
        pixels[0, 0] = torch.tensor(extra)
    Image.fromarray(pixels.to(torch.uint8).numpy()).save(path)
    return path


def test_mask_regions_rule_their_colour_and_share_a_soft_edge(tmp_path: Path) -> None:
    path = _mask_png(tmp_path / "map.png")
    objective = mask(str(path), {"#ff8000": class_logit(1), "#0040ff": class_logit(2)})
    orange, blue = _weights(objective)
    middle_of = torch.tensor([[3.5 / 16, 0.5], [8.5 / 16, 0.5], [13.5 / 16, 0.5]])
    torch.testing.assert_close(orange(middle_of), torch.tensor([1.0, 0.5, 0.0]), atol=0.01, rtol=0)
    points = _points(10, 10)
    torch.testing.assert_close(orange(points) + blue(points), torch.ones(1, 10, 10))
    # Colour names and [r, g, b] name colours too.
    named = mask(str(path), {(255, 128, 0): class_logit(1), "0040FF": class_logit(2)})
    assert named == objective


def test_the_shipped_mask_is_found_from_any_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """experiment=mask_wave names configs/masks/wave.png: found beside the configs from a folder
    that has no configs/ of its own (an installed package too)."""
    monkeypatch.chdir(tmp_path)
    with Image.open(ROOT / "configs" / "masks" / "wave.png") as shipped:
        assert read_mask("configs/masks/wave.png").shape == (shipped.height, shipped.width, 3)
    with pytest.raises(UserError, match=r"'configs/masks/none\.png' is not a file"):
        read_mask("configs/masks/none.png")


@pytest.mark.parametrize(
    ("make", "regions", "message"),
    [
        (lambda p: p / "none.png", {"red": 1}, "'.*none.png' is not a file"),
        (
            lambda p: (p / "bad.png").write_text("no image") and p / "bad.png",
            {"red": 1},
            "cannot be read as an image",
        ),
        (
            lambda p: _mask_png(p / "m.png", extra=(0, 255, 0)),
            None,
            r"colours that no region names: #00ff00 \(1 pixels\)",
        ),
        (
            lambda p: _mask_png(p / "m.png"),
            {"#ff8000": 1, "#0040ff": 1, "white": 1},
            "region #ffffff names no colour of",
        ),
        (lambda p: _mask_png(p / "m.png"), {"#ff8000": 1, "not-a-colour": 1}, "is not a colour"),
        (lambda p: _mask_png(p / "m.png"), {}, "regions must map colours"),
    ],
    ids=["missing", "unreadable", "unnamed colour", "absent colour", "bad colour", "no regions"],
)
def test_bad_masks_are_user_errors(tmp_path: Path, make, regions, message: str) -> None:
    path = make(tmp_path)
    if regions is None:
        regions = {"#ff8000": 1, "#0040ff": 1}
    regions = {colour: class_logit(v) for colour, v in regions.items()}
    with pytest.raises(UserError, match=message):
        mask(str(path), regions)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: atlas([]), "the grid is empty"),
        (lambda: atlas_from_config(classes=[]), "the grid is empty"),
        (lambda: atlas([channel(LAYER, 0)] * 5, [2, 2]), "2x2 has 4 cells for 5"),
        (lambda: atlas([channel(LAYER, 0)], blend=2), "blend must be in"),
        (lambda: atlas_from_config(layer=LAYER, channels="range(3)"), "range"),
        (lambda: atlas_from_config(layer=LAYER), "exactly one of"),
        (lambda: atlas_from_config(channels=[1]), "needs objective.layer"),
        (lambda: interpolate(channel(LAYER, 0), channel(LAYER, 1), "z"), "axis must be 'x'"),
        (lambda: interpolate(channel(LAYER, 0), {"class_index": 1}), "end must be an objective"),
        (lambda: interpolate(channel(LAYER, 0), channel(LAYER, 1), transition=1.5), "transition"),
        (lambda: channel(LAYER, 0).where("left"), "WeightMap or a 2-D tensor"),
    ],
)
def test_bad_layouts_are_user_errors(build, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build()


# --- renders -------------------------------------------------------------------------------

# Two channels of one layer side by side: left of the canvas channel 3, right of it channel 4.
TWO_CHANNELS = [
    "objective=atlas",
    "objective.layer=blocks.2.0",
    "objective.channels=[3,4]",
    "tiling.base_size=[64,128]",
    "tiling.tile_size=[64,64]",
    "render.tiles_per_step=2",
    "render.blend_every=3",
    "render.octaves=1",
    "trainer.accelerator=cpu",
]


@torch.no_grad()
def _halves(png: Path) -> torch.Tensor:
    """Channels 3 and 4 of blocks.2.0 on the left and right halves: [[c3 left, c3 right], ...]."""
    with Image.open(png) as picture:
        image = TF.to_dtype(TF.to_image(picture.convert("RGB")), torch.float32, scale=True)[None]
    act = efficientnet_lite0().capture(image, ["blocks.2.0"])["blocks.2.0"][0, 3:5]
    half = act.shape[-1] // 2
    return torch.stack([act[..., :half].mean(dim=(1, 2)), act[..., half:].mean(dim=(1, 2))], 1)


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2], ids=["one process", "ddp"])
def test_each_cell_of_a_render_grows_its_own_channel(tmp_path: Path, ranks: int) -> None:
    ddp = DDP if ranks == 2 else []
    run = run_render if ddp else tiledream  # more ranks need a process of their own
    run(*TWO_CHANNELS, "trainer.max_steps=12", *ddp, f"hydra.run.dir={tmp_path}")
    (c3_left, c3_right), (c4_left, c4_right) = _halves(tmp_path / "render.png").tolist()
    assert c3_left > c3_right + 0.5 and c4_right > c4_left + 0.5


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["experiment=mask_wave", "objective.path=/no/such/map.png"],
            "mask: path '/no/such/map.png'",
        ),
        (["objective=interpolate", "objective.axis=z"], "axis must be 'x'"),
        (["objective=atlas", "objective.channels=[]"], "the grid is empty"),
    ],
)
def test_bad_layouts_on_the_command_line_are_one_error_line(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    result = tiledream(*overrides, f"hydra.run.dir={tmp_path}", check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
