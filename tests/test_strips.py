"""The canvas in bands: each is rebuild_with_masks's rows, with one tile row fetched at a time."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tiling_geometry import geometries

from render.strips import canvas_strips, fetch_order
from tiling import TilingModule


@settings(max_examples=60, deadline=None)
@given(geometries(), st.integers(1, 50), st.sampled_from([None, 1, 3]), st.integers(0, 2**31))
def test_bands_are_the_rebuilds_rows(geometry, rows, border, seed):
    tile, overlap, base, placement, window = geometry
    if border is not None and border > min(tile):
        border = min(tile)
    module = TilingModule(tile, overlap, base, placement, window)
    # Outside [0, 1] too, so that the clamp is exercised.
    tiles = torch.rand(module.num_tiles(), 3, *tile, generator=torch.Generator().manual_seed(seed))
    tiles = tiles.mul_(1.4).sub_(0.2)
    whole = module.rebuild_with_masks(tiles, border=border).clamp(0, 1)[0]
    columns = module.tiling_pattern()[1]
    fetched: list[list[int]] = []

    def fetch(idx: torch.Tensor) -> torch.Tensor:
        fetched.append(idx.tolist())
        return tiles[idx]

    tops = []
    for top, band in canvas_strips(module, fetch, rows, border=border):
        assert band.shape == (3, min(rows, base[0] - top), base[1])
        assert torch.equal(band, whole[:, top : top + band.shape[1]]), f"band at {top}"
        tops.append(top)
    assert tops == list(range(0, base[0], rows))
    # One whole tile row per fetch, indices increasing, in the order fetch_order tells.
    assert all(len(idx) == columns and idx == sorted(idx) for idx in fetched)
    assert {idx[0] % columns for idx in fetched} == {0}
    assert fetched == [idx.tolist() for idx in fetch_order(module, rows)]


def test_rows_must_be_positive():
    with pytest.raises(ValueError, match="rows must be at least 1"):
        next(canvas_strips(TilingModule(4, 1, 8), lambda idx: torch.zeros(len(idx), 3, 4, 4), 0))
