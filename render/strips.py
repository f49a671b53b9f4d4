"""The blended canvas band by band, so that no writer ever holds a full-size float canvas.

``canvas_strips`` blends, for each band of rows, only the tile rows that cross it, with the
tiling's own weights and in the order ``TilingModule.rebuild_with_masks`` adds them, so each band
is that rebuild's rows (clamped to [0, 1]) (``render.shards.add_tiles``). It keeps one band and
one row of tiles alive. The tiles may have more channels than RGB (a transparency map in
[0, 1]: render/alpha.py); each is blended alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from render.shards import add_tiles, blend_order
from tiling import TilingModule

__all__ = ["Fetch", "canvas_strips", "fetch_order"]

# Decoded tiles [k, c, h, w] (CPU; RGB, then any other channels in [0, 1]) of the tile indices
# given (a CPU LongTensor, increasing).
Fetch = Callable[[Tensor], Tensor]


def _bands(tiling: TilingModule, rows: int) -> Iterator[tuple[int, int, list[int]]]:
    """``(top, bottom, tile rows)`` of every band: the tile rows that cross it, in blend order."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    height, th = tiling._base_size[0], tiling._tile_size[0]
    starts_y = tiling._starts_y
    order = blend_order(tiling)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        yield top, bottom, [r for r in order if starts_y[r] < bottom and starts_y[r] + th > top]


def _row_tiles(tiling: TilingModule, row: int) -> Tensor:
    columns = len(tiling._starts_x)
    return torch.arange(row * columns, (row + 1) * columns)


def fetch_order(tiling: TilingModule, rows: int) -> Iterator[Tensor]:
    """The tile indices ``canvas_strips(tiling, fetch, rows)`` asks ``fetch`` for, in order:
    what a process that holds tiles but writes nothing serves, in step with the writer."""
    for _, _, tile_rows in _bands(tiling, rows):
        for row in tile_rows:
            yield _row_tiles(tiling, row)


def canvas_strips(
    tiling: TilingModule, fetch: Fetch, rows: int, border: int | None = None
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(top, band)``, ``band`` = ``[c, rows_here, W]`` in [0, 1] on the tiles' device
    (``c``: the tiles' channels), top to bottom.

    Each band equals ``tiling.rebuild_with_masks(tiles, border=border).clamp(0, 1)[0, :,
    top:top + rows_here]``; ``border`` outlines every tile in red, as that rebuild does.
    ``fetch`` is called once per tile row that crosses a band (see ``fetch_order``).
    """
    width = tiling._base_size[1]
    for top, bottom, tile_rows in _bands(tiling, rows):
        band: Tensor | None = None
        out_dtype = torch.float32
        for row in tile_rows:
            index = _row_tiles(tiling, row)
            tiles = fetch(index)
            if band is None:
                out_dtype = tiles.dtype
                dtype = tiling._accumulation_dtype(tiles.dtype)
                shape = (tiles.shape[1], bottom - top, width)
                band = torch.zeros(shape, dtype=dtype, device=tiles.device)
            add_tiles(tiling, band, top, [(tiles.to(band.dtype), index)])
            del tiles
        assert band is not None, "every canvas row is covered by a tile"
        band = band.to(out_dtype)
        if border is not None:
            _draw_borders(band, top, tiling._starts_y, tiling._starts_x, tiling._tile_size, border)
        yield top, band.clamp_(0, 1)


def _draw_borders(
    band: Tensor,
    top: int,
    starts_y: list[int],
    starts_x: list[int],
    tile: tuple[int, int],
    border: int,
) -> None:
    """Outline, in red, every tile edge that crosses the band (``rebuild``'s ``border``);
    channels after RGB are left as they are."""
    if border <= 0:
        raise ValueError(f"border must be a positive number of pixels or None, got {border}")
    th, tw = tile
    height = band.shape[1]
    mask = torch.zeros(band.shape[1:], dtype=torch.bool)
    for y in starts_y:
        if y >= top + height or y + th <= top:
            continue
        for x in starts_x:
            for y0, y1, x0, x1 in (
                (y, y + border, x, x + tw),
                (y + th - border, y + th, x, x + tw),
                (y, y + th, x, x + border),
                (y, y + th, x + tw - border, x + tw),
            ):
                lo, hi = max(y0 - top, 0), min(y1 - top, height)
                if lo < hi:
                    mask[lo:hi, x0:x1] = True
    for channel, value in enumerate((1.0, 0.0, 0.0)):
        band[channel].masked_fill_(mask, value)
