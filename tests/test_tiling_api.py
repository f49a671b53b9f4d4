"""TilingModule's API: batches, dtypes, layouts, autograd, TorchScript, torch.compile, errors."""

import warnings

import pytest
import torch

from tiling import TilingModule


def scripted(module: TilingModule) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still offered
        return torch.jit.script(module)


def test_batches_are_stacked_image_by_image():
    module = TilingModule(32, 0.25, [80, 96])
    images = torch.rand(3, 3, 80, 96)
    tiles = module.split_into_tiles(images)
    per_image = module.num_tiles()
    assert tiles.shape[0] == 3 * per_image
    for i in range(3):
        assert torch.equal(
            tiles[i * per_image : (i + 1) * per_image], module.split_into_tiles(images[i : i + 1])
        )
    torch.testing.assert_close(module.rebuild_with_masks(tiles), images)
    assert module(tiles).shape == tiles.shape


def test_split_retargets_to_the_input_size():
    module = TilingModule(64, 0.25, 128)
    tiles = module.split_into_tiles(torch.rand(1, 3, 200, 150))
    assert module.tiling_pattern() == [4, 3]
    assert module.rebuild(tiles).shape == (1, 3, 200, 150)


@pytest.mark.parametrize(
    "dtype, tol",
    [(torch.float16, 2e-3), (torch.bfloat16, 2e-2), (torch.float32, 1e-6), (torch.float64, 1e-12)],
)
def test_float_dtypes_round_trip(dtype, tol):
    module = TilingModule(48, 0.3, [100, 130], window="cosine")
    image = torch.rand(2, 3, 100, 130).to(dtype)
    tiles = module.split_into_tiles(image)
    assert tiles.dtype == dtype
    out = module.rebuild_with_masks(tiles)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), image.double(), atol=tol, rtol=0)
    assert module.get_tile_masks(dtype=dtype).dtype == dtype
    assert module(tiles).dtype == dtype


def test_channels_last_inputs_give_equal_values_and_keep_their_layout():
    module = TilingModule(40, 0.25, [90, 110])
    image = torch.rand(2, 3, 90, 110)
    dense = module.split_into_tiles(image)
    tiles = module.split_into_tiles(image.contiguous(memory_format=torch.channels_last))
    assert tiles.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(tiles, dense)
    rebuilt = module.rebuild_with_masks(tiles)
    assert rebuilt.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(rebuilt, module.rebuild_with_masks(dense))
    torch.testing.assert_close(module(tiles), module(dense))


def test_gradcheck_through_split_rebuild_and_forward():
    # 3x3 tiles at rows 0, 3, 5 and columns 0, 3, 5 (overlaps of 2 and 3): corners, edges and
    # an inner tile, unequal overlaps.
    module = TilingModule([5, 6], [2, 0.34], [10, 11], window="cosine")
    assert module.tiling_pattern() == [3, 3]
    image = torch.rand(1, 2, 10, 11, dtype=torch.float64, requires_grad=True)
    tiles = module.split_into_tiles(image.detach()).requires_grad_()
    assert torch.autograd.gradcheck(module.split_into_tiles, (image,))
    assert torch.autograd.gradcheck(module.rebuild_with_masks, (tiles,))
    assert torch.autograd.gradcheck(module.rebuild, (tiles,))
    assert torch.autograd.gradcheck(module, (tiles,))


def test_every_public_method_works_scripted_and_equals_eager():
    eager = TilingModule([24, 32], [0.25, 8], [70, 90], window="cosine")
    script = scripted(TilingModule([24, 32], [0.25, 8], [70, 90], window="cosine"))
    image = torch.rand(2, 3, 70, 90)
    tiles = eager.split_into_tiles(image)
    assert torch.equal(script.split_into_tiles(image), tiles)
    assert script.num_tiles() == eager.num_tiles()
    assert script.tiling_pattern() == eager.tiling_pattern()
    assert script.tile_coords() == eager.tile_coords()
    assert torch.equal(script.get_tile_masks(2), eager.get_tile_masks(2))
    assert torch.equal(script.rebuild(tiles), eager.rebuild(tiles))
    assert torch.equal(
        script.rebuild(tiles[:3], 2, [0.0, 1.0, 0.0]), eager.rebuild(tiles[:3], 2, [0.0, 1.0, 0.0])
    )
    assert torch.equal(script.rebuild_with_masks(tiles), eager.rebuild_with_masks(tiles))
    assert torch.equal(script(tiles), eager(tiles))
    # Re-targeting happens inside the scripted method too.
    other = torch.rand(1, 3, 50, 120)
    assert torch.equal(script.split_into_tiles(other), eager.split_into_tiles(other))
    assert script.tiling_pattern() == eager.tiling_pattern()


@pytest.mark.slow
def test_torch_compile_fullgraph_forward():
    module = TilingModule(32, 0.25, 80)
    tiles = module.split_into_tiles(torch.rand(1, 3, 80, 80))
    compiled = torch.compile(module, fullgraph=True)
    torch.testing.assert_close(compiled(tiles), module(tiles))


def test_partial_stack_draws_its_first_tiles():
    module = TilingModule(32, 0.25, 80)
    tiles = torch.rand(module.num_tiles(), 3, 32, 32)
    partial = module.rebuild(tiles[:4])
    expected = torch.zeros(1, 3, 80, 80)
    for tile, (y, x) in zip(tiles[:4], module.tile_coords()[:4], strict=True):
        expected[0, :, y : y + 32, x : x + 32] += tile
    torch.testing.assert_close(partial, expected)
    with pytest.raises(ValueError, match="full stack"):
        module(tiles[:4])


def test_borders_outline_every_tile_in_the_given_colour():
    module = TilingModule(32, 0.25, 80)
    tiles = module.split_into_tiles(torch.zeros(1, 1, 80, 80))
    out = module.rebuild(tiles, border=1, colors=[1.0])[0, 0]
    for y, x in module.tile_coords():
        assert out[y, x : x + 32].eq(1).all() and out[y + 31, x : x + 32].eq(1).all()
        assert out[y : y + 32, x].eq(1).all() and out[y : y + 32, x + 31].eq(1).all()
    assert out[2, 2] == 0
    red = module.rebuild_with_masks(torch.zeros(module.num_tiles(), 3, 32, 32), border=2)
    assert red[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"tile_size": 0}, ValueError, "tile_size must be positive"),
        ({"tile_size": -4}, ValueError, "tile_size must be positive"),
        ({"tile_size": 2.5}, TypeError, "tile_size must hold integers"),
        ({"tile_size": [1, 2, 3]}, ValueError, r"pair \[height, width\]"),
        ({"base_size": 100}, ValueError, r"must fit in the base size \[100, 100\]"),
        ({"tile_overlap": 1.0}, ValueError, r"fraction must be in \[0, 1\)"),
        ({"tile_overlap": -0.1}, ValueError, r"fraction must be in \[0, 1\)"),
        ({"tile_overlap": 224}, ValueError, r"pixels must be in \[0, tile size\)"),
        ({"tile_overlap": "a"}, TypeError, "must hold numbers"),
        ({"tile_size": 2, "tile_overlap": 0.6, "base_size": 8}, ValueError, "no stride"),
        ({"placement": "random"}, ValueError, "placement must be one of"),
        ({"window": "hann"}, ValueError, "window must be one of"),
    ],
)
def test_bad_construction_raises_a_clear_error(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        TilingModule(**kwargs)


def test_bad_inputs_raise_clear_errors():
    module = TilingModule(32, 0.25, 80)
    tiles = module.split_into_tiles(torch.rand(1, 3, 80, 80))
    with pytest.raises(ValueError, match="4-D NCHW"):
        module.split_into_tiles(torch.rand(3, 80, 80))
    with pytest.raises(ValueError, match="must fit in the base size"):
        module.split_into_tiles(torch.rand(1, 3, 20, 80))
    with pytest.raises(ValueError, match="tiles must be 32x32, got 16x32"):
        module(tiles[:, :, :16])
    with pytest.raises(ValueError, match="full stack of N \\* 9 tiles, got 10"):
        module(torch.cat([tiles, tiles[:1]]))
    with pytest.raises(ValueError, match="multiple of 9 tiles"):
        module.rebuild(torch.cat([tiles, tiles[:1]]))
    with pytest.raises(ValueError, match=r"one value per channel \(3\)"):
        module.rebuild(tiles, border=1, colors=[1.0, 0.0])
    with pytest.raises(ValueError, match="border must be a positive"):
        module.rebuild(tiles, border=0)
    with pytest.raises(TypeError, match="floating-point"):
        module(tiles.long())


def test_forward_can_blend_in_place():
    module = TilingModule(32, 0.25, 80)
    tiles = torch.rand(2 * module.num_tiles(), 3, 32, 32)
    expected = module(tiles)
    assert module(tiles, out=tiles) is tiles
    torch.testing.assert_close(tiles, expected)
    script = scripted(TilingModule(32, 0.25, 80))
    other = torch.rand_like(tiles)
    want = module(other)
    script(other, other)
    torch.testing.assert_close(other, want)
    with pytest.raises(ValueError, match="out must match"):
        module(tiles, out=tiles[:, :1])
