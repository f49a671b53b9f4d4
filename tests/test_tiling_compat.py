"""Drop-in fidelity to blended-tiling: exact ones, partial rebuilds, the semi-private surface."""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tiling import TilingModule


def scripted(module: TilingModule) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still offered
        return torch.jit.script(module)


def cover_per_axis(module: TilingModule) -> torch.Tensor:
    """The larger of the row and column tile counts over each canvas pixel, [H, W]."""
    h, w = module._base_size
    rows, cols = torch.zeros(h), torch.zeros(w)
    for y in module._coords[0]:
        rows[y : y + module._tile_size[0]] += 1
    for x in module._coords[1]:
        cols[x : x + module._tile_size[1]] += 1
    return torch.maximum(rows[:, None], cols[None, :])


@st.composite
def reference_geometries(draw):
    """Geometries the reference accepts: fractional overlaps up to 0.5 and no overlap at all."""
    tile = [draw(st.integers(2, 48)) for _ in range(2)]
    overlap = [draw(st.floats(0.0, 0.5).filter(lambda f, t=t: int(t * (1 - f)) >= 1)) for t in tile]
    base = [draw(st.integers(t, 5 * t)) for t in tile]
    return tile, overlap, base


@settings(max_examples=150, deadline=None)
@given(
    reference_geometries(),
    st.sampled_from([torch.float32, torch.float64]),
    st.sampled_from([1.0, -1.0, 0.5, 4.0, 0.0]),
)
def test_constants_come_back_bit_for_bit_where_two_tiles_meet(geometry, dtype, value):
    """Ones (and any power of two, which scales the weights exactly) survive every blend path
    wherever at most two tiles meet along each axis: corners of four tiles included."""
    tile, overlap, base = geometry
    module = TilingModule(tile, overlap, base)
    # At most two tiles per axis: up to four at a corner, still exact.
    two = cover_per_axis(module) <= 2
    image = torch.full((1, 3, base[0], base[1]), value, dtype=dtype)
    tiles = module.split_into_tiles(image)
    by_hand = module.rebuild(tiles * module.get_tile_masks(3, dtype=dtype))
    tol = (1e-5 if dtype == torch.float32 else 1e-12) * max(1.0, abs(value))
    for canvas in (module.rebuild_with_masks(tiles), by_hand):
        assert canvas.dtype == dtype
        assert torch.equal(canvas[0, :, two], image[0, :, two])
        # Three tiles along an axis (overlaps above 50%): within a few roundings.
        torch.testing.assert_close(canvas, image, atol=tol, rtol=0)
    blended = module(tiles)
    two_in_tiles = module.split_into_tiles(two[None, None].to(dtype)).bool().expand_as(tiles)
    assert torch.equal(blended[two_in_tiles], tiles[two_in_tiles])
    torch.testing.assert_close(blended, tiles, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "tile, overlap, base, limit",
    [
        (224, 0.25, 512, 0.0),  # the reference's cases, where its own tests allow 0.003
        (224, 0.0, 512, 0.0),
        (18, 0.1, 128, 0.0),
        (38, 0.24, 64, 0.0),
        (224, 0.5, 512, 0.04),  # three tiles over a pixel: normalised, not exact
    ],
)
def test_summed_error_of_ones_is_within_the_references_bounds(tile, overlap, base, limit, dtype):
    module = TilingModule(tile, overlap, base)
    ones = torch.ones(module.num_tiles(), 3, *module._tile_size, dtype=dtype)
    assert (module(ones) - ones).abs().sum() <= limit
    assert (module.rebuild_with_masks(ones) - 1).abs().sum() <= limit / 3


def test_linear_ramps_are_the_references_linspace():
    """Over a regular overlap the masks are the reference's ``linspace(0, 1)`` ramps."""
    masks = TilingModule([1, 64], [0, 0.25], [1, 112]).get_tile_masks(channels=1)
    close = {"atol": 2**-13, "rtol": 0}  # ramps are kept to multiples of 2**-12
    torch.testing.assert_close(masks[1, 0, 0, :16], torch.linspace(0, 1, 16), **close)
    torch.testing.assert_close(masks[0, 0, 0, 48:], 1 - torch.linspace(0, 1, 16), **close)
    close = {"atol": 2**-12, "rtol": 0}  # products of two such ramps
    reference = pytest.importorskip("blended_tiling").TilingModule(224, 0.25, 560)
    torch.testing.assert_close(
        TilingModule(224, 0.25, 560).get_tile_masks(), reference.get_tile_masks(), **close
    )


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_partial_rebuild_with_a_border_is_the_partial_canvas(channels):
    module = TilingModule(5, 0.25, 8)
    ones = torch.ones(module.num_tiles() - 1, channels, 5, 5)
    for rebuild in (module.rebuild_with_masks, scripted(module).rebuild_with_masks):
        partial = rebuild(ones, border=1)
        expected = torch.ones(1, channels, 8, 8)
        expected[:, :, 4:, 4:] = 0  # the missing last tile
        assert torch.equal(partial, expected)
    full = module.rebuild_with_masks(torch.ones(4, 1, 5, 5), border=1, colors=[-5.0])
    assert full[0, 0, 0].eq(-5).all() and full[0, 0, 1, 1] == 1


def test_semi_private_attributes_hold_the_references_values():
    for module in (TilingModule([224, 224], [0.25, 0.25], [512, 512]),):
        for m in (module, scripted(module)):
            assert m._tile_size == (224, 224)
            assert m._tile_overlap == (0.25, 0.25)
            assert m._coords == [[0, 168, 288], [0, 168, 288]]
            assert m._overlap == [[[0, 56], [0, 56], [48, 56]], [[0, 56], [0, 56], [48, 56]]]
    module.split_into_tiles(torch.rand(1, 3, 300, 700))
    assert module._coords == [[0, 76], [0, 168, 336, 476]]
    assert module._overlap[0] == [[0, 148], [0, 148]]  # a lone pair ramps over all of it
    assert TilingModule(224, 56, 512)._tile_overlap == (56, 56)


def test_calc_tile_coords_is_the_references_rule_eager_and_scripted():
    module = TilingModule()
    for m in (module, scripted(module)):
        assert m._calc_tile_coords(512, 224, 0.5) == (
            [0, 112, 224, 288],
            [[0, 112], [0, 112], [0, 112], [48, 112]],
        )
        assert m._calc_tile_coords(224, 112, 0.15) == ([0, 95, 112], [[0, 17], [0, 17], [78, 17]])
        assert m._calc_tile_coords(224, 224, 0.25) == ([0], [])
    with pytest.raises(ValueError, match="overlap must be a fraction"):
        module._calc_tile_coords(100, 10, 0.95)


@settings(max_examples=150, deadline=None)
@given(reference_geometries())
def test_semi_private_surface_equals_the_installed_reference(geometry):
    blended_tiling = pytest.importorskip("blended_tiling")
    tile, overlap, base = geometry
    reference = blended_tiling.TilingModule(tile, overlap, base)
    ours = TilingModule(tile, overlap, base)
    assert ours._tile_size == reference._tile_size
    assert ours._tile_overlap == reference._tile_overlap
    assert ours._coords == reference._coords
    assert ours._overlap == reference._overlap
    for axis in range(2):
        d, t, o = base[axis] + 7, tile[axis], overlap[axis]
        assert ours._calc_tile_coords(d, t, o) == reference._calc_tile_coords(d, t, o)
    image = torch.rand(1, 2, base[0] + 3, base[1] + 5)
    tiles, coords, overlaps = ours._get_tiles_and_coords(image)
    expected = reference._get_tiles_and_coords(image)
    assert torch.equal(tiles, expected[0])
    assert coords == expected[1] and overlaps == expected[2]
    assert ours._base_size == base, "the hook leaves the module's own geometry alone"


class ShiftedTiling(TilingModule):
    """The reference's way to extend the module: blend, change the image, cut it again."""

    def __init__(self, tile_size=(224, 224), tile_overlap=(0.25, 0.25), base_size=(512, 512)):
        TilingModule.__init__(self, tile_size, tile_overlap, base_size)
        self.custom_module = torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.rebuild_with_masks(x)
        x = self.custom_module(x) + 4.0
        return self._get_tiles_and_coords(x)[0]


@pytest.mark.parametrize("base", [512, 416])
def test_a_subclass_using_the_hooks_works_eager_and_scripted(base):
    module = ShiftedTiling(base_size=[base, base])
    tiles = module.split_into_tiles(torch.rand(2, 3, base, base))
    expected = module.split_into_tiles(module.rebuild_with_masks(tiles) + 4.0)
    for m in (module, scripted(module)):
        torch.testing.assert_close(m(tiles), expected, atol=1e-6, rtol=0)
