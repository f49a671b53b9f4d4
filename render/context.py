"""Context views: at the finer octaves of a pyramid, each tile is also seen in its neighbourhood.

A tile of a fine octave shows a small part of the canvas, so an objective scored on it alone
grows a whole subject in every tile: a canvas of bees becomes a field of small bees (which a
classifier reads as an *apiary*) and the composition the coarse octaves set is lost. A context
view keeps it: the canvas as last blended, shrunk to the first octave's size (the thumbnail),
with the tile's live pixels shrunk and pasted in at their place, cropped to a tile around it.
The model sees the neighbourhood at the scale the composition was made at, and the gradient
reaches the tile through its pasted pixels (the rest of the view is fixed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from render.plan import is_deep


def shrink(images: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(
        images, size=list(size), mode="bilinear", antialias=True, align_corners=False
    )


class ContextView:
    """Context views of the tiles of one canvas, from a thumbnail of the first octave's size."""

    def __init__(
        self, canvas: tuple[int, int], thumbnail: tuple[int, int], tile: tuple[int, int]
    ) -> None:
        """Views of ``tile``-sized tiles of a ``canvas`` (height, width) at ``thumbnail``'s scale.

        The thumbnail is at least a tile (a view is one tile of it) and at most the canvas.
        """
        self.tile = tile
        height, width = (min(max(t, s), c) for t, s, c in zip(tile, thumbnail, canvas, strict=True))
        self.size = (height, width)
        # At the canvas's own size a tile's view is the tile itself: no thumbnail is kept (it
        # would be a copy of the whole canvas on every rank and device).
        self.own = self.size == tuple(canvas)
        # Thumbnail pixels per canvas pixel, along y and x.
        self.scale = torch.tensor(
            [s / c for s, c in zip(self.size, canvas, strict=True)], dtype=torch.float64
        )
        self.thumbnail: Tensor | None = None

    def refresh(self, canvas: Tensor, device: torch.device) -> None:
        """Take the thumbnail, kept on ``device``, from ``canvas`` [1, 3, H, W] (after a blend,
        or at the start), or from a thumbnail of it already at this size (shrinking to the same
        size changes nothing).
        """
        if not self.own:
            self.thumbnail = shrink(canvas, self.size).clamp_(0, 1).to(device)

    def views(self, tiles: Tensor, starts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(views, corners, spans)`` of ``tiles`` [n, 3, h, w] whose top-left pixels are
        ``starts`` [n, 2] (y, x): the views [n, 3, h, w] and, in canvas pixels, the top-left
        corner and the (height, width) each view covers, [n, 2] each.
        """
        tile, size = torch.tensor(self.tile), torch.tensor(self.size)
        if self.own:
            return tiles, starts.double(), tile.double().expand(len(tiles), 2)
        if self.thumbnail is None:
            raise RuntimeError("ContextView.views before refresh")
        thumb = self.thumbnail.to(tiles.dtype)
        small = shrink(tiles, (tile * self.scale).round().long().clamp(min=1).tolist())
        pasted = torch.tensor(small.shape[-2:])
        at = (starts * self.scale).round().long().clamp(min=0)
        at = torch.minimum(at, size - pasted)
        # Each view is centred on its tile, moved inside the thumbnail near its edges.
        corner = (at + pasted // 2 - tile // 2).clamp(min=0)
        corner = torch.minimum(corner, size - tile)
        (h, w), (th, tw) = self.tile, pasted.tolist()
        views = []
        for image, (y, x), (cy, cx) in zip(small, at.tolist(), corner.tolist(), strict=True):
            view = thumb[0, :, cy : cy + h, cx : cx + w].clone()
            view[:, y - cy : y - cy + th, x - cx : x - cx + tw] = image
            views.append(view)
        spans = (tile / self.scale).expand(len(tiles), 2)
        return torch.stack(views), corner / self.scale, spans


#: ``render.context_scales`` when null: octave 1's view alone, and on a deep pyramid
#: (render/plan.py) a middle scale too. A deep pyramid's quarter-canvas windows lie far from
#: both octave 1's view and the tile: without it some quarters of a 2048 poster are a field of
#: small copies (docs/guide/posters.md).
SHALLOW_SCALES = (0.0,)
DEEP_SCALES = (0.0, 0.33, 1.0)


def default_scales(first: tuple[int, int], final: tuple[int, int]) -> tuple[float, ...]:
    """The context scales of a pyramid from ``first`` to ``final`` when none are given."""
    return DEEP_SCALES if is_deep(first, final) else SHALLOW_SCALES


def between(first: tuple[int, int], own: tuple[int, int], scale: float) -> tuple[int, int]:
    """The canvas size ``scale`` of the way from ``first`` (0) to ``own`` (1), on a log scale."""
    height, width = (round(f ** (1 - scale) * o**scale) for f, o in zip(first, own, strict=True))
    return height, width


class ContextViews:
    """Context views from thumbnails of several sizes, which a tile's updates take in turn."""

    def __init__(
        self, canvas: tuple[int, int], thumbnails: Sequence[tuple[int, int]], tile: tuple[int, int]
    ) -> None:
        self.each = [ContextView(canvas, size, tile) for size in thumbnails]
        # The views that keep a thumbnail (not those at the canvas's own size).
        self.kept = [view for view in self.each if not view.own]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """The sizes of the thumbnails kept, in turn order."""
        return [view.size for view in self.kept]

    @property
    def thumbnails(self) -> list[Tensor] | None:
        """The thumbnails kept, or None before the first refresh."""
        kept = [view.thumbnail for view in self.kept]
        return None if any(t is None for t in kept) else kept  # type: ignore[return-value]

    @thumbnails.setter
    def thumbnails(self, thumbnails: Sequence[Tensor]) -> None:
        if len(thumbnails) == len(self.each) != len(self.kept):
            # A checkpoint from before own-size views kept no thumbnail holds one per view.
            thumbnails = [t for view, t in zip(self.each, thumbnails, strict=True) if not view.own]
        for view, thumbnail in zip(self.kept, thumbnails, strict=True):
            view.thumbnail = thumbnail

    def refresh(self, canvases: Sequence[Tensor], device: torch.device) -> None:
        """Take each thumbnail from the canvas already shrunk to its size (``sizes``' order)."""
        for view, canvas in zip(self.kept, canvases, strict=True):
            view.refresh(canvas, device)

    def views(
        self, tiles: Tensor, starts: Tensor, updates: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`ContextView.views` of each tile from the thumbnail whose turn its update
        count ``updates`` [n] makes it.
        """
        turns = updates.long() % len(self.each)
        parts = [
            (which, view.views(tiles[which], starts[which]))
            for turn, view in enumerate(self.each)
            if len(which := (turns == turn).nonzero().flatten()) > 0
        ]
        if len(parts) == 1:
            return parts[0][1]
        views = tiles.new_empty(tiles.shape)
        corners = torch.empty((len(tiles), 2), dtype=torch.float64)
        spans = torch.empty((len(tiles), 2), dtype=torch.float64)
        for which, (v, c, s) in parts:
            views[which.to(tiles.device)], corners[which], spans[which] = v, c.double(), s.double()
        return views, corners, spans
