"""How much a dreamed video flickers: the issue's stability measure on a clip of known motion.

The instability of a sequence of frames is the mean absolute difference between frame ``t + 1``
and frame ``t`` moved by the scene's true motion, over the pixels whose source is inside the
frame (0 to 1). Measured on the input frames it is the floor the resampling alone leaves; a
video dreamed frame by frame independently is far above it; a dream that moves with the scene
should be close to it.
"""

from __future__ import annotations

from torch import Tensor

from render.motion.flow import inside, warp


def instability(frames: Tensor, flow: Tensor) -> float:
    """Mean ``|frames[t + 1] - warp(frames[t], flow)|`` over ``t`` and the pixels that come
    from inside the frame; ``frames`` ``[T, 3, H, W]``, ``flow`` the backward flow between any
    two consecutive frames ``[1, 2, H, W]`` or one per pair ``[T - 1, 2, H, W]``."""
    if frames.shape[0] < 2:
        raise ValueError(f"instability needs at least 2 frames, got {frames.shape[0]}")
    flow = flow.expand(frames.shape[0] - 1, -1, -1, -1)
    valid = inside(flow).to(frames)
    difference = (frames[1:] - warp(frames[:-1], flow)).abs().mean(1, keepdim=True)
    return float((difference * valid).sum() / valid.sum())
