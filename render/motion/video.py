"""``init=video``: dream a video frame by frame, each frame starting from the previous dreamed
frame moved by the scene's optical flow, so the dream moves with the scene instead of flickering.

The start of frame ``t`` is ``w * warp(dream[t - 1]) + (1 - w) * frame[t]``, with the weight
``w`` ``init.reliable`` where the flow between the input frames passes the forward-backward
check and ``init.unreliable`` where it does not (occlusions, what came into view), as
ksk-S/DeepDreamVideoOpticalFlow blends its moving and static parts with separate weights.
The flow is measured on the input frames, which the dream does not change.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from render.config import find_shipped
from render.errors import UserError
from render.motion.decode import VideoInfo, probe, read_frames
from render.motion.flow import FlowMethod, consistent, flow_method, warp


def blend_weights(reliable: Tensor, weight_reliable: float, weight_unreliable: float) -> Tensor:
    """``[N, 1, H, W]`` weights of the moved previous dream: one weight where ``reliable``,
    the other elsewhere."""
    return torch.where(reliable, weight_reliable, weight_unreliable).float()


def warm_start(
    frame: Tensor,
    previous_frame: Tensor,
    previous_dream: Tensor,
    flow: FlowMethod,
    weights: tuple[float, float],
) -> Tensor:
    """The start of the dream of ``frame``: ``previous_dream`` (the dream of ``previous_frame``)
    moved by the flow from ``previous_frame`` to ``frame`` and blended with ``frame``;
    ``weights`` are the previous dream's where the flow is reliable and where it is not."""
    backward = flow(frame, previous_frame)
    reliable = consistent(backward, flow(previous_frame, frame))
    weight = blend_weights(reliable, *weights)
    return (weight * warp(previous_dream, backward) + (1 - weight) * frame).clamp(0, 1)


class VideoInit:
    """Start from the frames of a video (``init=video init.path=clip.mp4``)."""

    def __init__(
        self,
        path: str,
        flow: str = "dis",
        reliable: float = 0.9,
        unreliable: float = 0.2,
    ) -> None:
        """Probe ``path`` now, so that a bad path fails before any work is done."""
        for name, value in (("reliable", reliable), ("unreliable", unreliable)):
            if not 0 <= value <= 1:
                raise UserError(f"init.{name} must be in [0, 1], got {value}")
        self.path = find_shipped(path)
        self.info: VideoInfo = probe(self.path)
        self.flow = flow_method(flow)
        self.weights = (reliable, unreliable)

    def size(self) -> tuple[int, int]:
        """The video's (height, width)."""
        return self.info.size

    def read(self, size: tuple[int, int], start: int = 0) -> Iterator[Tensor]:
        """Frames ``start``, ... of the video as ``[1, 3, H, W]`` resized to ``size``."""
        for frame in read_frames(self.path, start):
            if tuple(frame.shape[-2:]) != tuple(size):
                frame = TF.resize(frame, list(size), antialias=True).clamp(0, 1)
            yield frame

    def canvas(self, size: tuple[int, int]) -> Tensor:
        """The first frame at ``size``: where the first frame's dream starts."""
        return next(self.read(size))

    def start(self, frame: Tensor, previous_frame: Tensor, previous_dream: Tensor) -> Tensor:
        """Where the dream of ``frame`` starts (:func:`warm_start`)."""
        return warm_start(frame, previous_frame, previous_dream, self.flow, self.weights)
