"""The tile grid and the blend masks: reference-exact placement, exact partition of unity."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tiling import TilingModule


def reference_starts(base: int, tile: int, stride: int) -> list[int]:
    """The reference release's placement rule, written out independently for comparison."""
    starts, k = [0], 1
    while starts[-1] + tile < base:
        nxt = stride * k
        starts.append(base - tile if nxt + tile >= base else nxt)
        k += 1
    return starts


@st.composite
def geometries(draw, max_tile: int = 40, max_tiles: int = 6):
    """A random valid geometry: (tile, overlap, base) per axis plus placement and window."""
    tile, overlap, base = [], [], []
    for _ in range(2):
        t = draw(st.integers(1, max_tile))
        if draw(st.booleans()):
            o = draw(st.integers(0, t - 1))
        else:
            o = draw(st.floats(0.0, 0.95).filter(lambda f, t=t: int(t * (1 - f)) >= 1))
        tile.append(t)
        overlap.append(o)
        base.append(draw(st.integers(t, t * max_tiles)))
    placement = draw(st.sampled_from(["grid", "even"]))
    window = draw(st.sampled_from(["linear", "cosine"]))
    return tile, overlap, base, placement, window


def test_documented_grids():
    module = TilingModule(224, 0.25, 512)
    assert module.num_tiles() == 9
    assert module.tiling_pattern() == [3, 3]
    assert [c[0] for c in module.tile_coords()[::3]] == [0, 168, 288]
    wide = TilingModule([256, 448], [0.25, 0.25], [768, 1014])
    assert wide.tiling_pattern() == [4, 3]
    assert wide.num_tiles() == 12
    assert wide.tile_coords()[:4] == [[0, 0], [0, 336], [0, 566], [192, 0]]


@settings(max_examples=300, deadline=None)
@given(
    tile=st.integers(1, 300),
    overlap=st.floats(0.0, 0.9),
    extra=st.integers(0, 900),
)
def test_grid_matches_the_reference_rule(tile, overlap, extra):
    stride = int(tile * (1 - overlap))
    if stride < 1:
        return
    base = tile + extra
    module = TilingModule([tile, 1], [overlap, 0], [base, 1])
    expected = reference_starts(base, tile, stride)
    assert [c[0] for c in module.tile_coords()] == expected
    assert module.tiling_pattern() == [len(expected), 1]


@settings(max_examples=200, deadline=None)
@given(geometries())
def test_masks_are_a_partition_of_unity(geometry):
    tile, overlap, base, placement, window = geometry
    module = TilingModule(tile, overlap, base, placement=placement, window=window)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        masks = module.get_tile_masks(channels=1, dtype=dtype)
        assert masks.dtype == dtype
        assert masks.min() >= 0 and masks.max() <= 1
        coverage = module.rebuild(masks)
        assert coverage.shape == (1, 1, base[0], base[1])
        torch.testing.assert_close(coverage, torch.ones_like(coverage), atol=tol, rtol=0)


@settings(max_examples=150, deadline=None)
@given(geometries(), st.integers(1, 2), st.integers(1, 3))
def test_split_then_blend_is_identity_and_forward_idempotent(geometry, n, channels):
    tile, overlap, base, placement, window = geometry
    module = TilingModule(tile, overlap, base, placement=placement, window=window)
    image = torch.rand(n, channels, base[0], base[1], dtype=torch.float64)
    tiles = module.split_into_tiles(image)
    assert tiles.shape == (n * module.num_tiles(), channels, tile[0], tile[1])
    torch.testing.assert_close(module.rebuild_with_masks(tiles), image, atol=1e-12, rtol=0)
    noisy = torch.rand_like(tiles)
    once = module(noisy)
    torch.testing.assert_close(module(once), once, atol=1e-12, rtol=0)


@settings(max_examples=100, deadline=None)
@given(geometries())
def test_split_tiles_are_the_image_windows(geometry):
    tile, overlap, base, placement, _ = geometry
    module = TilingModule(tile, overlap, base, placement=placement)
    image = torch.rand(2, 2, base[0], base[1])
    tiles = module.split_into_tiles(image).view(2, module.num_tiles(), 2, tile[0], tile[1])
    for k, (y, x) in enumerate(module.tile_coords()):
        assert torch.equal(tiles[:, k], image[:, :, y : y + tile[0], x : x + tile[1]])


@pytest.mark.parametrize(
    "tile, overlap, base",
    [
        (64, 0, 256),  # zero overlap
        (64, 1, 200),  # one pixel of overlap
        (10, 0.1, 37),  # reference: a one-pixel ramp is dropped, overlap weighs 2
        (64, 0.25, 64),  # a single tile, tile == base
        ([16, 64], 0.5, [16, 300]),  # a single row
        ([64, 16], 0.5, [300, 16]),  # a single column
        (32, 0.75, 100),  # three tiles over a pixel
        (7, 0.3, 50),  # small odd tiles
    ],
)
def test_edge_geometries_blend_exactly(tile, overlap, base):
    module = TilingModule(tile, overlap, base)
    h, w = module._base_size
    image = torch.rand(1, 3, h, w)
    out = module.rebuild_with_masks(module.split_into_tiles(image))
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


def test_reference_release_breaks_where_tiledream_holds():
    """A geometry where the reference's masks do not sum to 1; ours do."""
    reference = pytest.importorskip("blended_tiling").TilingModule([10, 10], [0.1, 0.1], [37, 37])
    ours = TilingModule(10, 0.1, 37)
    ref_cover = reference.rebuild(reference.get_tile_masks(channels=1))
    assert (ref_cover - 1).abs().max() > 0.5
    our_cover = ours.rebuild(ours.get_tile_masks(channels=1))
    torch.testing.assert_close(our_cover, torch.ones_like(our_cover), atol=1e-6, rtol=0)


@settings(max_examples=100, deadline=None)
@given(geometries())
def test_tiles_and_plain_rebuild_equal_the_reference(geometry):
    tile, overlap, base, _, _ = geometry
    if not all(isinstance(o, float) and o <= 0.5 for o in overlap):
        return  # the reference takes fractions up to 0.5 only
    blended_tiling = pytest.importorskip("blended_tiling")
    reference = blended_tiling.TilingModule(tile, overlap, base)
    ours = TilingModule(tile, overlap, base)
    assert ours.num_tiles() == reference.num_tiles()
    assert ours.tiling_pattern() == reference.tiling_pattern()
    image = torch.rand(1, 3, base[0], base[1])
    tiles = ours.split_into_tiles(image)
    assert torch.equal(tiles, reference.split_into_tiles(image))
    torch.testing.assert_close(ours.rebuild(tiles), reference.rebuild(tiles))
    if min(tile) < 4:
        return  # the reference cannot draw a border on tiles this small
    border = max(1, min(tile) // 8)
    torch.testing.assert_close(
        ours.rebuild(tiles, border=border, colors=[0.0, 0.5, 1.0]),
        reference.rebuild(tiles, border=border, colors=[0.0, 0.5, 1.0]),
    )


@settings(max_examples=100, deadline=None)
@given(tile=st.integers(2, 64), overlap=st.floats(0.0, 0.9), extra=st.integers(1, 400))
def test_even_placement_spreads_overlaps_equally(tile, overlap, extra):
    if int(tile * (1 - overlap)) < 1:
        return
    base = tile + extra
    grid = TilingModule([tile, 1], [overlap, 0], [base, 1])
    even = TilingModule([tile, 1], [overlap, 0], [base, 1], placement="even")
    assert even.num_tiles() == grid.num_tiles()
    starts = [c[0] for c in even.tile_coords()]
    assert starts[0] == 0 and starts[-1] == base - tile
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) - min(gaps) <= 1


def test_pixel_overlap_equals_the_matching_fraction():
    pixels = TilingModule(224, 56, 512)
    fraction = TilingModule(224, 0.25, 512)
    assert pixels.tile_coords() == fraction.tile_coords()
    assert torch.equal(pixels.get_tile_masks(), fraction.get_tile_masks())


def test_cosine_window_is_smooth_and_differs_from_linear():
    linear = TilingModule(64, 0.5, 160).get_tile_masks(channels=1)
    cosine = TilingModule(64, 0.5, 160, window="cosine").get_tile_masks(channels=1)
    assert not torch.allclose(linear, cosine)
    # A cosine ramp starts flatter than a linear one.
    assert cosine[1, 0, 32, 8] < linear[1, 0, 32, 8]
