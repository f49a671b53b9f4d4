"""``TilingModule``: split NCHW tensors into overlapping tiles and blend them back together."""

import math
from typing import List, Optional, Sequence, Tuple, cast

import torch

from tiling.geometry import (
    PLACEMENTS,
    WINDOWS,
    complement_runs,
    gather_runs,
    max_cover,
    reference_ramps,
    scatter_slices,
    tile_starts,
    tile_weights,
    weights_in,
)

Size = int | Sequence[int]
Overlap = int | float | Sequence[int | float]


def _pair(name: str, value: object) -> List[object]:
    """Normalise a scalar or a (height, width) pair to a two-item list."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one value or a pair [height, width], got {value!r}")
        return list(value)
    return [value, value]


def _sizes(name: str, value: Size) -> List[int]:
    """Validate a size argument: positive integers."""
    sizes: List[int] = []
    for s in _pair(name, value):
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"{name} must hold integers, got {value!r}")
        if s <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
        sizes.append(int(s))
    return sizes


def _stride(tile: int, overlap: object) -> int:
    """Distance between regular tile starts: a float overlap is a fraction, an int is pixels."""
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)):
        raise TypeError(f"tile_overlap must hold numbers, got {overlap!r}")
    if isinstance(overlap, int):
        if not 0 <= overlap < tile:
            raise ValueError(
                f"tile_overlap in pixels must be in [0, tile size) = [0, {tile}), got {overlap}"
            )
        return tile - overlap
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile_overlap as a fraction must be in [0, 1), got {overlap}")
    stride = int(tile * (1 - overlap))
    if stride < 1:
        raise ValueError(
            f"tile_overlap {overlap} leaves no stride for a tile of {tile} pixels "
            f"(int({tile} * (1 - {overlap})) = 0); use a smaller overlap"
        )
    return stride


def _ramp_pixels(tile: int, overlap: int | float) -> int:
    """The reference's ramp length: ``ceil(tile * overlap)`` for a fraction, else the pixels."""
    if isinstance(overlap, int):
        return overlap
    return math.ceil(tile * overlap)


class TilingModule(torch.nn.Module):
    """Splits NCHW tensors into overlapping tiles of one size and blends tiles back together.

    A drop-in for the ``blended-tiling`` release: same constructor, methods and tile grid, with
    exact blending (the masks are a partition of unity for every geometry), batches of images,
    pixel overlaps, a cosine window, even placement, and separable masks that are never
    materialised while blending.

    The reference's semi-private surface is kept for code that subclasses or inspects it:
    ``_tile_size``, ``_tile_overlap``, ``_coords``, ``_overlap``, ``_calc_tile_coords`` and
    ``_get_tiles_and_coords``, with the reference's values.
    """

    _tile_size: Tuple[int, int]
    _coords: List[List[int]]
    _overlap: List[List[List[int]]]
    _ramps: List[int]
    _runs_y: List[List[int]]
    _runs_x: List[List[int]]
    _strides: List[int]
    _base_size: List[int]
    _starts_y: List[int]
    _starts_x: List[int]
    _gather_y: List[List[int]]
    _gather_x: List[List[int]]
    _scatter_y: List[List[int]]
    _scatter_x: List[List[int]]

    def __init__(
        self,
        tile_size: Size = (224, 224),
        tile_overlap: Overlap = (0.25, 0.25),
        base_size: Size = (512, 512),
        placement: str = "grid",
        window: str = "linear",
    ) -> None:
        """Tile ``base_size`` with ``tile_size`` tiles overlapping by ``tile_overlap``.

        ``tile_overlap``: a float is a fraction of the tile in [0, 1), an int is pixels in
        [0, tile). ``placement``: "grid" (the reference's) or "even". ``window``: "linear" or
        "cosine".
        """
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
        sizes = _sizes("tile_size", tile_size)
        self._tile_size = (sizes[0], sizes[1])
        overlaps = _pair("tile_overlap", tile_overlap)
        self._strides = [_stride(t, o) for t, o in zip(sizes, overlaps, strict=True)]
        # As given (fractions or pixels), like the reference's attribute.
        self._tile_overlap = (overlaps[0], overlaps[1])
        # _stride has checked that the overlaps are numbers.
        self._ramps = [
            _ramp_pixels(t, cast(int | float, o)) for t, o in zip(sizes, overlaps, strict=True)
        ]
        self._even = placement == "even"
        self._window = window
        base = _sizes("base_size", base_size)
        self._retarget(base[0], base[1])

    def _retarget(self, height: int, width: int) -> None:
        """Recompute everything that depends on the base size."""
        th, tw = self._tile_size[0], self._tile_size[1]
        if th > height or tw > width:
            raise ValueError(
                f"tile_size [{th}, {tw}] must fit in the base size [{height}, {width}]"
            )
        self._base_size = [height, width]
        self._starts_y = tile_starts(height, th, self._strides[0], self._even)
        self._starts_x = tile_starts(width, tw, self._strides[1], self._even)
        self._coords = [self._starts_y, self._starts_x]
        self._overlap = self._reference_overlap(self._starts_y, self._starts_x, height, width)
        self._weights_y = tile_weights(self._starts_y, th, height, self._window)
        self._weights_x = tile_weights(self._starts_x, tw, width, self._window)
        self._runs_y = complement_runs(self._starts_y, th, height)
        self._runs_x = complement_runs(self._starts_x, tw, width)
        self._max_cover = max_cover(self._starts_y, th, height) * max_cover(
            self._starts_x, tw, width
        )
        self._gather_y = gather_runs(self._starts_y)
        self._gather_x = gather_runs(self._starts_x)
        self._scatter_y = scatter_slices(
            self._starts_y, th, self._weight_signature(self._weights_y, self._runs_y)
        )
        self._scatter_x = scatter_slices(
            self._starts_x, tw, self._weight_signature(self._weights_x, self._runs_x)
        )
        # Weights in the last dtype and device used; geometry-only, so kept.
        self._cast_y = weights_in(self._weights_y, self._runs_y, torch.float64)
        self._cast_x = weights_in(self._weights_x, self._runs_x, torch.float64)

    def _weight_signature(self, weights: torch.Tensor, runs: List[List[int]]) -> torch.Tensor:
        """Tiles may share a weight patch only if they agree in every dtype that blends."""
        wide = weights_in(weights, runs, torch.float64)
        narrow = weights_in(weights, runs, torch.float32).to(torch.float64)
        return torch.cat([wide, narrow], 1)

    @torch.jit.export
    def num_tiles(self) -> int:
        """Number of tiles one image is split into."""
        return len(self._starts_y) * len(self._starts_x)

    @torch.jit.export
    def tiling_pattern(self) -> List[int]:
        """``[rows, columns]`` of the tile grid (tiles are ordered row by row)."""
        return [len(self._starts_y), len(self._starts_x)]

    @torch.jit.export
    def tile_coords(self) -> List[List[int]]:
        """``[top, left]`` of every tile, in tile order."""
        coords: List[List[int]] = []
        for y in self._starts_y:
            for x in self._starts_x:
                coords.append([y, x])
        return coords

    @torch.jit.export
    def _calc_tile_coords(
        self, d: int, tile_dim: int, overlap: float = 0.0
    ) -> Tuple[List[int], List[List[int]]]:
        """The reference's tile starts and ``[zeros, ramp]`` entries along one axis of ``d``."""
        if tile_dim >= d:
            return [0], torch.jit.annotate(List[List[int]], [])
        stride = int(tile_dim * (1.0 - overlap))
        if stride < 1 or overlap < 0.0:
            raise ValueError(
                f"overlap must be a fraction in [0, 1) that leaves a stride for a tile of "
                f"{tile_dim} pixels, got {overlap}"
            )
        starts = tile_starts(d, tile_dim, stride, False)
        return starts, reference_ramps(starts, tile_dim, d, math.ceil(tile_dim * overlap))

    @torch.jit.export
    def _get_tiles_and_coords(
        self, tensor: torch.Tensor
    ) -> Tuple[torch.Tensor, List[List[int]], List[List[List[int]]]]:
        """Tiles of ``tensor`` with their ``[y_starts, x_starts]`` and ``_overlap`` entries.

        Unlike ``split_into_tiles`` it leaves the module's geometry alone (the reference's
        subclassing hook), so an image of another size is cut per tile on the side.
        """
        self._check_4d(tensor, "tensor")
        height, width = tensor.shape[2], tensor.shape[3]
        if height == self._base_size[0] and width == self._base_size[1]:
            return self._split(tensor), self._coords, self._overlap
        th, tw = self._tile_size[0], self._tile_size[1]
        if th > height or tw > width:
            raise ValueError(f"tile_size [{th}, {tw}] must fit in the image [{height}, {width}]")
        ys = tile_starts(height, th, self._strides[0], self._even)
        xs = tile_starts(width, tw, self._strides[1], self._even)
        windows: List[torch.Tensor] = []
        for y in ys:
            for x in xs:
                windows.append(tensor[:, :, y : y + th, x : x + tw])
        tiles = torch.stack(windows, 1).flatten(0, 1)
        return tiles, [ys, xs], self._reference_overlap(ys, xs, height, width)

    def _reference_overlap(
        self, ys: List[int], xs: List[int], height: int, width: int
    ) -> List[List[List[int]]]:
        """The reference's ``[zeros, ramp]`` entries of tiles starting at ``ys`` and ``xs``."""
        return [
            reference_ramps(ys, self._tile_size[0], height, self._ramps[0]),
            reference_ramps(xs, self._tile_size[1], width, self._ramps[1]),
        ]

    def _weights(
        self, dtype: torch.dtype, device: torch.device
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if self._cast_y.dtype != dtype or self._cast_y.device != device:
            self._cast_y = weights_in(self._weights_y, self._runs_y, dtype).to(device)
            self._cast_x = weights_in(self._weights_x, self._runs_x, dtype).to(device)
        return self._cast_y, self._cast_x

    def _check_4d(self, x: torch.Tensor, name: str) -> None:
        if x.dim() != 4:
            raise ValueError(f"{name} must be a 4-D NCHW tensor, got shape {list(x.shape)}")

    def _check_tile_shape(self, tiles: torch.Tensor) -> None:
        self._check_4d(tiles, "tiles")
        if tiles.shape[2] != self._tile_size[0] or tiles.shape[3] != self._tile_size[1]:
            raise ValueError(
                f"tiles must be {self._tile_size[0]}x{self._tile_size[1]}, "
                f"got {tiles.shape[2]}x{tiles.shape[3]}"
            )

    def _empty_like_layout(self, like: torch.Tensor, shape: List[int]) -> torch.Tensor:
        """Uninitialised [N, R, C, ch, th, tw] tiles in ``like``'s memory format."""
        if (
            like.dim() == 4
            and like.shape[1] > 1
            and like.is_contiguous(memory_format=torch.channels_last)
        ):
            phys = torch.empty(
                [shape[0], shape[1], shape[2], shape[4], shape[5], shape[3]],
                dtype=like.dtype,
                device=like.device,
            )
            return phys.permute(0, 1, 2, 5, 3, 4)
        return torch.empty(shape, dtype=like.dtype, device=like.device)

    def _split(self, x: torch.Tensor, dest: Optional[torch.Tensor] = None) -> torch.Tensor:
        th, tw = self._tile_size[0], self._tile_size[1]
        rows, cols = len(self._starts_y), len(self._starts_x)
        n, c = x.shape[0], x.shape[1]
        if dest is None:
            out = self._empty_like_layout(x, [n, rows, cols, c, th, tw])
        else:
            out = dest.view([n, rows, cols, c, th, tw])
        for ry in self._gather_y:
            band = x.narrow(2, ry[3], (ry[1] - 1) * ry[4] + th).unfold(2, th, ry[4])
            for rx in self._gather_x:
                win = band.narrow(3, rx[3], (rx[1] - 1) * rx[4] + tw).unfold(3, tw, rx[4])
                out[:, ry[0] : ry[0] + ry[1], rx[0] : rx[0] + rx[1]] = win.permute(0, 2, 3, 1, 4, 5)
        if dest is not None:
            return dest
        return out.reshape(n * rows * cols, c, th, tw)

    def _place(self, tiles: torch.Tensor, weighted: bool) -> torch.Tensor:
        """Sum (optionally weighted) tiles into full images; the core of every rebuild."""
        th, tw = self._tile_size[0], self._tile_size[1]
        rows, cols = len(self._starts_y), len(self._starts_x)
        per_image = rows * cols
        count, c = tiles.shape[0], tiles.shape[1]
        if count < per_image:
            # A partial stack draws its first tiles (the reference's animation uses this).
            pad = torch.zeros(
                [per_image - count, c, th, tw], dtype=tiles.dtype, device=tiles.device
            )
            tiles = torch.cat([tiles, pad])
        elif count % per_image != 0:
            raise ValueError(
                f"expected a multiple of {per_image} tiles (or fewer than {per_image}), got {count}"
            )
        n = tiles.shape[0] // per_image
        grid = tiles.view([n, rows, cols, c, th, tw]).permute(0, 3, 1, 2, 4, 5)
        dtype = self._accumulation_dtype(tiles.dtype)
        canvas = torch.zeros(
            [n, c, self._base_size[0], self._base_size[1]], dtype=dtype, device=tiles.device
        )
        if c > 1 and tiles.is_contiguous(memory_format=torch.channels_last):
            canvas = canvas.contiguous(memory_format=torch.channels_last)
        wy, wx = self._weights(dtype, tiles.device)
        for sy in self._scatter_y:
            band = canvas.narrow(2, sy[3], (sy[1] - 1) * sy[4] + th).unfold(2, th, sy[4])
            src_rows = grid[:, :, sy[0] : sy[0] + (sy[1] - 1) * sy[2] + 1 : sy[2]]
            for sx in self._scatter_x:
                win = band.narrow(3, sx[3], (sx[1] - 1) * sx[4] + tw).unfold(3, tw, sx[4])
                src = src_rows[:, :, :, sx[0] : sx[0] + (sx[1] - 1) * sx[2] + 1 : sx[2]]
                if weighted:
                    win.addcmul_(src, torch.outer(wy[sy[0]], wx[sx[0]]))
                else:
                    win.add_(src)
        return canvas.to(tiles.dtype)

    def _accumulation_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """Sum half precision in float32, and float32 in float64 where many tiles overlap.

        k positive weights summing to 1 are off by at most about (k + 2) float32 roundings
        (6e-8 each): up to 12 tiles over a pixel stay within 1e-6 of exact, so only heavier
        overlaps (above about 70%) pay for a wider sum.
        """
        if dtype == torch.float16 or dtype == torch.bfloat16:
            return torch.float32
        if dtype == torch.float32 and self._max_cover > 12:
            return torch.float64
        return dtype

    def _draw_borders(
        self, canvas: torch.Tensor, border: int, colors: Optional[List[float]]
    ) -> torch.Tensor:
        c = canvas.shape[1]
        if border <= 0:
            raise ValueError(f"border must be a positive number of pixels or None, got {border}")
        if colors is None:
            if c != 3:
                raise ValueError(
                    f"colors must be given for {c}-channel tiles (the default is RGB red)"
                )
            colors = [1.0, 0.0, 0.0]
        if len(colors) != c:
            raise ValueError(f"colors must have one value per channel ({c}), got {colors}")
        th, tw = self._tile_size[0], self._tile_size[1]
        mask = torch.zeros(self._base_size, dtype=torch.bool, device=canvas.device)
        cols = len(self._starts_x)
        for k in range(self.num_tiles()):
            y, x = self._starts_y[k // cols], self._starts_x[k % cols]
            mask[y : y + border, x : x + tw] = True
            mask[y + th - border : y + th, x : x + tw] = True
            mask[y : y + th, x : x + border] = True
            mask[y : y + th, x + tw - border : x + tw] = True
        # In place, channel by channel: no second canvas for a debugging view of a huge one.
        for channel in range(c):
            canvas[:, channel].masked_fill_(mask, colors[channel])
        return canvas

    def _rebuild(
        self,
        tiles: torch.Tensor,
        weighted: bool,
        border: Optional[int],
        colors: Optional[List[float]],
    ) -> torch.Tensor:
        self._check_tile_shape(tiles)
        if weighted and not tiles.is_floating_point():
            raise TypeError(f"blending needs floating-point tiles, got {tiles.dtype}")
        canvas = self._place(tiles, weighted)
        # Like the reference, a partial stack (an animation frame) is drawn without borders.
        if border is not None and tiles.shape[0] >= self.num_tiles():
            canvas = self._draw_borders(canvas, border, colors)
        return canvas

    @torch.jit.export
    def split_into_tiles(self, x: torch.Tensor) -> torch.Tensor:
        """Split N images into N * num_tiles() tiles, re-targeting the module to x's size."""
        self._check_4d(x, "x")
        if x.shape[2] != self._base_size[0] or x.shape[3] != self._base_size[1]:
            self._retarget(x.shape[2], x.shape[3])
        return self._split(x)

    @torch.jit.export
    def get_tile_masks(
        self,
        channels: int = 3,
        device: torch.device = torch.device("cpu"),
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Blend masks, one per tile, [num_tiles, channels, tile_h, tile_w]; they sum to 1."""
        if channels <= 0:
            raise ValueError(f"channels must be positive, got {channels}")
        wy = weights_in(self._weights_y, self._runs_y, dtype).to(device)
        wx = weights_in(self._weights_x, self._runs_x, dtype).to(device)
        masks = wy[:, None, :, None] * wx[None, :, None, :]
        th, tw = self._tile_size[0], self._tile_size[1]
        masks = masks.reshape(self.num_tiles(), 1, th, tw)
        return masks.expand(self.num_tiles(), channels, th, tw).contiguous()

    @torch.jit.export
    def rebuild(
        self,
        tiles: torch.Tensor,
        border: Optional[int] = None,
        colors: Optional[List[float]] = None,
    ) -> torch.Tensor:
        """Sum tiles into full images without blending; ``border`` outlines the tiles."""
        return self._rebuild(tiles, False, border, colors)

    # Not exported: TorchScript drops the defaults of exported methods for calls from other
    # methods, and subclasses call ``self.rebuild_with_masks(x)``. ``forward`` compiles it.
    def rebuild_with_masks(
        self,
        tiles: torch.Tensor,
        border: Optional[int] = None,
        colors: Optional[List[float]] = None,
    ) -> torch.Tensor:
        """Blend tiles into full images with the tile masks; inverse of ``split_into_tiles``."""
        return self._rebuild(tiles, True, border, colors)

    def forward(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Blend the overlaps of a full stack of tiles (N * num_tiles()) and split again.

        ``out`` (which may be ``x`` itself) receives the blended tiles instead of a new tensor:
        the canvas is complete before any tile is written, so blending in place is safe and
        saves a copy of the tile stack.
        """
        self._check_tile_shape(x)
        if x.shape[0] == 0 or x.shape[0] % self.num_tiles() != 0:
            raise ValueError(
                f"forward needs a full stack of N * {self.num_tiles()} tiles, got {x.shape[0]}"
            )
        if not x.is_floating_point():
            raise TypeError(f"blending needs floating-point tiles, got {x.dtype}")
        if out is not None and (out.shape != x.shape or out.dtype != x.dtype):
            raise ValueError(
                f"out must match the tiles' shape {list(x.shape)} and dtype {x.dtype}, "
                f"got {list(out.shape)} and {out.dtype}"
            )
        return self._split(self.rebuild_with_masks(x), out)

    def extra_repr(self) -> str:
        return (
            f"tile_size={self._tile_size}, strides={self._strides}, base_size={self._base_size}, "
            f"pattern={self.tiling_pattern()}, window={self._window!r}, even={self._even}"
        )
