"""Optical flow between frames, backward warping and the flow's reliability.

Flows here are *backward*: ``flow[:, :, y, x]`` is the ``(dx, dy)`` from pixel ``(x, y)`` of the
target frame to where that pixel was in the source frame, so that
``warp(source, flow) ≈ target``. That is the flow a dreamed video needs: every pixel of the new
frame looks up the previous dreamed frame where the scene was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from render.errors import UserError

#: ``init.flow`` options: OpenCV's classical flows (no weights) and torchvision's RAFT.
METHODS = ("dis", "farneback", "raft_small", "raft_large")


class FlowMethod(Protocol):
    """Estimates the backward flow from ``target`` to ``source`` (both ``[1, 3, H, W]``)."""

    def __call__(self, target: Tensor, source: Tensor) -> Tensor: ...


def _gray(image: Tensor) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """``[1, 3, H, W]`` in [0, 1] as an 8-bit grey OpenCV image."""
    rgb = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def _to_tensor(flow: np.ndarray[Any, Any]) -> Tensor:
    """OpenCV's ``[H, W, 2]`` flow as ``[1, 2, H, W]`` float32."""
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)[None].float()


class OpenCVFlow:
    """OpenCV's DIS (dense inverse search, ``medium`` preset) or Farneback flow: classical,
    no weights to download, a few milliseconds a frame at 256 px on one core."""

    def __init__(self, method: str = "dis") -> None:
        """``method``: ``dis`` or ``farneback``."""
        if method not in ("dis", "farneback"):
            raise UserError(f"OpenCV flow method must be 'dis' or 'farneback', got {method!r}")
        self.method = method

    def __call__(self, target: Tensor, source: Tensor) -> Tensor:
        """Backward flow ``[1, 2, H, W]`` in pixels: ``warp(source, flow) ≈ target``."""
        a, b = _gray(target), _gray(source)
        flow = np.zeros((*a.shape, 2), np.float32)
        if self.method == "dis":
            dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_MEDIUM)
            flow = dis.calc(a, b, flow)
        else:
            flow = cv2.calcOpticalFlowFarneback(a, b, flow, 0.5, 4, 15, 5, 5, 1.1, 0)
        return _to_tensor(flow)


def raft_weights_file(name: str) -> Path:
    """Where torchvision keeps the default weights of ``raft_small`` / ``raft_large``."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(name).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


class RaftFlow:
    """torchvision's RAFT, only from weights already in the torch hub cache (never downloaded):
    better than DIS on large motions and occlusions, seconds a frame on a CPU."""

    def __init__(self, name: str = "raft_small", iterations: int = 12) -> None:
        """``name``: ``raft_small`` or ``raft_large``; ``iterations``: RAFT's refinement steps."""
        from torchvision.models import optical_flow

        path = raft_weights_file(name)
        if not path.is_file():
            raise UserError(
                f"init.flow={name} needs torchvision's weights at {path} (they are never "
                f"downloaded during a render); place the file there, or use init.flow=dis"
            )
        self.model = getattr(optical_flow, name)(weights=None).eval()
        self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.iterations = iterations

    @torch.no_grad()
    def __call__(self, target: Tensor, source: Tensor) -> Tensor:
        """Backward flow ``[1, 2, H, W]`` in pixels: ``warp(source, flow) ≈ target``."""
        h, w = target.shape[-2:]
        # RAFT's encoders downsample by 8 and its correlation pyramid 16 times more: pad by
        # replication to a multiple of 8, at least 128.
        pad = (0, max(128, w + -w % 8) - w, 0, max(128, h + -h % 8) - h)
        device = next(self.model.parameters()).device
        a, b = (F.pad(x.to(device) * 2 - 1, pad, mode="replicate") for x in (target, source))
        flow = self.model(a, b, num_flow_updates=self.iterations)[-1]
        return flow[..., :h, :w].cpu()


def flow_method(name: str) -> FlowMethod:
    """The flow estimator ``init.flow`` names (:data:`METHODS`)."""
    if name in ("dis", "farneback"):
        return OpenCVFlow(name)
    if name in ("raft_small", "raft_large"):
        return RaftFlow(name)
    raise UserError(f"init.flow must be one of {list(METHODS)}, got {name!r}")


def _grid(flow: Tensor) -> Tensor:
    """Sampling positions ``p + flow(p)`` in grid_sample's [-1, 1] coordinates, ``[N, H, W, 2]``."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij"
    )
    x = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    return torch.stack([x, y], dim=-1)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """``image`` ``[N, C, H, W]`` sampled at ``p + flow(p)`` (bilinear; border pixels repeat
    outside the frame): the source frame moved into the target frame."""
    return F.grid_sample(
        image, _grid(flow).to(image), mode="bilinear", padding_mode="border", align_corners=True
    )


def inside(flow: Tensor) -> Tensor:
    """``[N, 1, H, W]`` booleans: the pixels whose source ``p + flow(p)`` is inside the frame."""
    grid = _grid(flow)
    return (grid.abs() <= 1).all(dim=-1)[:, None]


def consistent(backward: Tensor, forward: Tensor) -> Tensor:
    """``[N, 1, H, W]`` booleans: where the flow is reliable, by the forward-backward check of
    Sundaram et al. (2010) as Ruder et al. (2016) use it for video style transfer.

    ``backward`` maps the target frame to the source, ``forward`` the source to the target.
    Following one and then the other must come back to the start: where it does not, the pixel
    was occluded or disoccluded, or the flow is wrong there. Pixels that come from outside the
    frame are unreliable too.
    """
    forward_there = warp(forward, backward)
    loop = (backward + forward_there).square().sum(1, keepdim=True)
    scale = backward.square().sum(1, keepdim=True) + forward_there.square().sum(1, keepdim=True)
    return (loop <= 0.01 * scale + 0.5) & inside(backward)
