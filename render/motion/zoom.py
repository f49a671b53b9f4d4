"""The camera move of an infinite zoom: a frame magnified, rotated and shifted about a point."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def move(
    frame: Tensor,
    zoom: float = 1.0,
    rotate: float = 0.0,
    drift: Sequence[float] = (0.0, 0.0),
    center: Sequence[float] = (0.5, 0.5),
) -> Tensor:
    """``frame`` ``[1, 3, H, W]`` in [0, 1] magnified ``zoom`` times and rotated ``rotate``
    degrees (anticlockwise) about ``center`` (``[y, x]``, shares of the frame), then shifted by
    ``drift`` (``[down, right]`` pixels); resampled bicubically.

    What comes into view from outside the frame (a zoom out, the corners of a rotation) is the
    frame mirrored at its edges, so no flat border enters a picture that is dreamed next.
    """
    _, _, height, width = frame.shape
    if zoom == 1 and rotate == 0 and not any(drift):
        return frame.clone()
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5,
        torch.arange(width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    cy, cx = center[0] * height, center[1] * width
    # Each output pixel looks up where it was: the move undone (shift, then rotation and zoom).
    # Rows grow downwards, so an anticlockwise turn on screen is clockwise in (x, y).
    dy, dx = ys - cy - drift[0], xs - cx - drift[1]
    angle = math.radians(rotate)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    source_x = cx + cos * dx - sin * dy
    source_y = cy + sin * dx + cos * dy
    # grid_sample's coordinates: -1 and 1 are the outer edges of the border pixels.
    grid = torch.stack([source_x / width * 2 - 1, source_y / height * 2 - 1], dim=-1)
    moved = F.grid_sample(
        frame,
        grid[None].to(frame.dtype),
        mode="bicubic",
        padding_mode="reflection",
        align_corners=False,
    )
    return moved.clamp(0, 1)
