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
from omegaconf import DictConfig
from torch import Tensor

from render.config import find_shipped
from render.errors import UserError
from render.initial import CanvasInit
from render.motion.decode import VideoInfo, probe, read_frames
from render.motion.flow import FlowMethod, consistent, flow_method, warp


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
    weight = torch.where(reliable, *weights).float()
    return (weight * warp(previous_dream, backward) + (1 - weight) * frame).clamp(0, 1)


class VideoInit:
    """Start from the frames of a video (``init=video init.path=clip.mp4``)."""

    def __init__(
        self,
        path: str,
        flow: str = "dis",
        reliable: float = 0.9,
        unreliable: float = 0.2,
        fit: str = "stretch",
    ) -> None:
        """Probe ``path`` now, so that a bad path fails before any work is done; ``fit``: how
        a frame is brought to the canvas's size (render/initial.py ``FITS``)."""
        for name, value in (("reliable", reliable), ("unreliable", unreliable)):
            if not 0 <= value <= 1:
                raise UserError(f"init.{name} must be in [0, 1], got {value}")
        self.path = find_shipped(path)
        self.info: VideoInfo = probe(self.path)
        self.flow = flow_method(flow)
        self.weights = (reliable, unreliable)
        self.fit = fit
        CanvasInit(torch.zeros(3, 1, 1), fit)  # an unknown fit fails now

    def size(self) -> tuple[int, int]:
        """The video's (height, width)."""
        return self.info.size

    def read(self, size: tuple[int, int], start: int = 0) -> Iterator[Tensor]:
        """Frames ``start``, ... of the video as ``[1, 3, H, W]`` brought to ``size``."""
        for frame in read_frames(self.path, start):
            yield CanvasInit(frame, self.fit).canvas(size)

    def frame(self, index: int, size: tuple[int, int]) -> Tensor:
        """Frame ``index`` at ``size``."""
        return next(self.read(size, index))

    def canvas(self, size: tuple[int, int]) -> Tensor:
        """The first frame at ``size``: where the first frame's dream starts."""
        return self.frame(0, size)

    def start(self, frame: Tensor, previous_frame: Tensor, previous_dream: Tensor) -> Tensor:
        """Where the dream of ``frame`` starts (:func:`warm_start`)."""
        return warm_start(frame, previous_frame, previous_dream, self.flow, self.weights)

    def configure(self, cfg: DictConfig) -> None:
        """Make ``cfg``'s ``video`` this video's: as many frames (or the first
        ``video.frames`` when that is set and fewer) at its frame rate."""
        given = int(cfg.video.frames)
        cfg.video.frames = min(given, self.info.frames) if given else self.info.frames
        cfg.video.fps = float(self.info.fps)


class VideoStarts:
    """The frame loop's starts for ``init=video`` (render/motion/frames.py): frame ``t``'s
    input frame and the dream of frame ``t - 1`` blended along the flow (:func:`warm_start`)."""

    def __init__(self, init: VideoInit) -> None:
        """The frames of ``init``, decoded in order as the loop asks for them."""
        self.init = init
        self.frames: Iterator[Tensor] | None = None
        self.last: tuple[int, Tensor] | None = None  # the last input frame read, and its index

    def _frame(self, index: int, size: tuple[int, int]) -> Tensor:
        """Input frame ``index`` at ``size``; the loop asks for them in order (a resume
        starts the decoder at the frame before the first missing one)."""
        if self.last is not None and self.last[0] == index:
            return self.last[1]
        if self.frames is None or self.last is None or self.last[0] != index - 1:
            self.frames = self.init.read(size, index)
        self.last = (index, next(self.frames))
        return self.last[1]

    def __call__(self, index: int, previous: Tensor) -> Tensor:
        """Where frame ``index`` starts, ``previous`` being the dream of frame ``index - 1``."""
        size = (previous.shape[-2], previous.shape[-1])
        before = self._frame(index - 1, size)
        return self.init.start(self._frame(index, size), before, previous)
