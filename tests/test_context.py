"""Context views: each tile of a finer octave seen in its neighbourhood at the first octave's
scale (render/context.py), where canvas points say it is."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import coordinate_canvas
from hypothesis import given, settings
from hypothesis import strategies as st

from render.context import ContextView, ContextViews, between
from render.objectives.spatial import canvas_points
from render.transforms import NoTransforms
from tiling import TilingModule


def _views(canvas: torch.Tensor, thumbnail: tuple[int, int], tile: int):
    """Every tile of ``canvas`` (its blue channel set to 1: live pixels) in its context view."""
    size = tuple(canvas.shape[-2:])
    tiling = TilingModule(tile_size=[tile, tile], tile_overlap=[0.25, 0.25], base_size=list(size))
    context = ContextView(size, thumbnail, (tile, tile))
    context.refresh(canvas, torch.device("cpu"))
    tiles = tiling.split_into_tiles(canvas).clone()
    tiles[:, 2] = 1
    starts = torch.tensor(tiling.tile_coords())
    return context, tiles, starts, *context.views(tiles, starts)


@pytest.mark.parametrize(("canvas", "thumbnail"), [((128, 192), (64, 96)), ((96, 160), (48, 80))])
def test_a_view_shows_its_tile_and_the_canvas_around_it_where_canvas_points_say(
    canvas, thumbnail
) -> None:
    # Halving a linear ramp keeps it linear, so away from the edges of the pasted tile and of
    # the thumbnail (where the resampling kernel is cut) each pixel of a view holds the canvas
    # point canvas_points gives for it.
    tile = 32
    _, _, starts, views, corners, spans = _views(coordinate_canvas(*canvas), thumbnail, tile)
    assert views.shape == (len(starts), 3, tile, tile)
    assert (spans == 2 * tile).all()
    points = canvas_points(
        NoTransforms(), corners, (tile, tile), canvas, torch.Generator(), spans
    ).double()
    seen = views[:, :2].permute(0, 2, 3, 1)
    margin = 2 / torch.tensor([thumbnail[1], thumbnail[0]])
    compare = ((points > margin) & (points < 1 - margin)).all(dim=-1)
    for view, point, start, keep in zip(views, points, starts, compare, strict=True):
        # The live tile (blue 1) is pasted where the tile lies on the canvas, at half its size.
        lo = start.flip(-1) / torch.tensor([canvas[1], canvas[0]])
        hi = lo + tile / torch.tensor([canvas[1], canvas[0]])
        in_tile = ((point > lo) & (point < hi)).all(dim=-1)
        assert in_tile.sum() == (tile // 2) ** 2
        torch.testing.assert_close(view[2][in_tile], torch.ones_like(view[2][in_tile]))
        off_tile = ((point < lo - margin) | (point > hi + margin)).any(dim=-1)
        assert (view[2][off_tile] == 0).all()
        keep &= off_tile | ((point > lo + margin) & (point < hi - margin)).all(dim=-1)
    assert compare.float().mean() > 0.5
    torch.testing.assert_close(seen[compare], points[compare], atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(
    canvas=st.tuples(st.integers(24, 200), st.integers(24, 200)),
    shrink=st.floats(0.1, 1.0),
    tile=st.integers(8, 24),
)
def test_views_stay_inside_the_thumbnail_and_cover_their_tile(canvas, shrink, tile) -> None:
    thumbnail = (max(tile, round(canvas[0] * shrink)), max(tile, round(canvas[1] * shrink)))
    context, tiles, starts, views, corners, spans = _views(
        coordinate_canvas(*canvas), thumbnail, tile
    )
    assert views.shape == tiles.shape
    assert (views[:, 2] > 0.999).any(dim=(1, 2)).all(), "every view shows its own tile"
    # Each view lies on the canvas, and the tile it shows lies inside it (within a pixel of
    # the thumbnail, the rounding of the pasted tile's place).
    size = torch.tensor(canvas, dtype=torch.float64)
    pixel = size / torch.tensor(context.size)
    assert (corners >= 0).all() and (corners + spans <= size + 1e-6).all()
    assert (starts >= corners - pixel).all()
    assert (starts + tile <= corners + spans + pixel).all()


def test_the_gradient_reaches_each_tile_through_its_pasted_pixels_only() -> None:
    context = ContextView((64, 64), (32, 32), (16, 16))
    context.refresh(torch.rand(1, 3, 64, 64), torch.device("cpu"))
    tiles = torch.rand(2, 3, 16, 16, requires_grad=True)
    views, _, _ = context.views(tiles, torch.tensor([[0, 0], [48, 32]]))
    views.sum().backward()
    assert tiles.grad is not None and (tiles.grad > 0).all()
    assert context.thumbnail is not None and not context.thumbnail.requires_grad


def test_views_before_a_thumbnail_is_taken_are_a_bug() -> None:
    with pytest.raises(RuntimeError, match="before refresh"):
        ContextView((64, 64), (32, 32), (16, 16)).views(torch.rand(1, 3, 16, 16), torch.zeros(1, 2))


def test_context_scales_lie_between_the_first_octaves_size_and_the_octaves_own() -> None:
    assert between((224, 224), (2048, 2048), 0.0) == (224, 224)
    assert between((224, 224), (2048, 2048), 1.0) == (2048, 2048)
    assert between((224, 224), (2048, 2048), 0.5) == (677, 677)  # octave 3 of the 2048 pyramid
    assert between((100, 200), (400, 200), 0.5) == (200, 200)


def test_each_tile_takes_the_thumbnail_its_update_count_turns_to() -> None:
    # A black thumbnail and a white one: the canvas around each pasted tile says whose turn it was.
    canvas, tile = (64, 64), (16, 16)
    views = ContextViews(canvas, [(32, 32), (48, 48)], tile)
    views.refresh([torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 48, 48)], torch.device("cpu"))
    tiles = torch.full((4, 3, *tile), 0.5)
    starts = torch.tensor([[0, 0], [48, 48], [0, 48], [24, 24]])
    seen, corners, spans = views.views(tiles, starts, torch.tensor([0, 1, 2, 5]))
    assert [bool((view == 1).any()) for view in seen] == [False, True, False, True]
    assert [bool((view == 0).any()) for view in seen] == [True, False, True, False]
    # Each view's place and span are its own thumbnail's, as one ContextView gives them.
    for k, which in enumerate([0, 1, 0, 1]):
        single = views.each[which].views(tiles[k : k + 1], starts[k : k + 1])
        torch.testing.assert_close(seen[k], single[0][0])
        torch.testing.assert_close(corners[k], single[1][0].double())
        torch.testing.assert_close(spans[k], single[2][0].double())


def test_a_view_at_the_canvass_own_size_is_the_tile_and_keeps_no_thumbnail() -> None:
    canvas, tile = (64, 48), (16, 16)
    views = ContextViews(canvas, [(32, 24), canvas], tile)
    assert views.sizes == [(32, 24)], "only the smaller view keeps a thumbnail"
    views.refresh([torch.rand(1, 3, 32, 24)], torch.device("cpu"))
    assert views.each[1].thumbnail is None
    tiles = torch.rand(2, 3, *tile)
    starts = torch.tensor([[0, 0], [48, 32]])
    seen, corners, spans = views.views(tiles, starts, torch.tensor([1, 3]))
    # Bit for bit what a thumbnail of the whole canvas gave: the tile pasted over all its view.
    pasted = F.interpolate(tiles, size=list(tile), mode="bilinear", antialias=True)
    assert torch.equal(seen, pasted) and torch.equal(seen, tiles)
    assert corners.tolist() == [[0.0, 0.0], [48.0, 32.0]]
    assert spans.tolist() == [[16.0, 16.0], [16.0, 16.0]]
    # A checkpoint from before holds a thumbnail per view, the canvas's own size too.
    views.thumbnails = [torch.zeros(1, 3, 32, 24), torch.zeros(1, 3, *canvas)]
    assert views.thumbnails is not None and len(views.thumbnails) == 1
