"""A clip whose motion is known: a camera panning (and zooming) across a photo, with a sine tone.

Tests and the figures of the video mode dream it, and measure stability against its true
motion (render/motion/stability.py). Between two frames every pixel moves by the same affine
map, ``p -> c + (p - c) / zoom + shift`` from the later frame into the earlier, with ``c`` the
frame's centre; the frames are sampled from the photo exactly along that path.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor


@dataclass(frozen=True)
class PanClip:
    """``frames`` frames of ``size`` (height, width) at ``fps``, panning ``shift`` (dx, dy)
    frame pixels and zooming in by ``zoom`` from one frame to the next across ``photo``
    (``[1, 3, H, W]`` in [0, 1]), which is resized so the path fits it at 1 photo pixel per
    frame pixel in the first frame."""

    photo: Tensor
    size: tuple[int, int]
    frames: int
    fps: int = 12
    shift: tuple[float, float] = (2.0, 0.0)
    zoom: float = 1.0

    def _path(self) -> tuple[Tensor, Tensor]:
        """The photo at the scale of the first frame and the frame centres in it ``[T, 2]``."""
        h, w = self.size
        # Frame t+1's centre is frame t's moved by shift frame pixels, zoom**-t photo pixels.
        scales = torch.tensor([self.zoom**-t for t in range(self.frames - 1)], dtype=torch.float64)
        steps = torch.tensor(self.shift, dtype=torch.float64)[None] * scales[:, None]
        path = torch.cat([torch.zeros(1, 2, dtype=torch.float64), steps.cumsum(0)])
        span = path.max(0).values - path.min(0).values
        need_w, need_h = w + float(span[0]) + 2, h + float(span[1]) + 2
        ph, pw = self.photo.shape[-2:]
        scale = max(need_w / pw, need_h / ph)
        photo = TF.resize(
            self.photo, [math.ceil(ph * scale), math.ceil(pw * scale)], antialias=True
        ).clamp(0, 1)
        middle = torch.tensor([photo.shape[-1] - 1, photo.shape[-2] - 1], dtype=torch.float64) / 2
        centres = middle + path - (path.max(0).values + path.min(0).values) / 2
        return photo, centres

    def video(self) -> Tensor:
        """All frames, ``[T, 3, h, w]`` in [0, 1]."""
        photo, centres = self._path()
        h, w = self.size
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float64),
            torch.arange(w, dtype=torch.float64),
            indexing="ij",
        )
        offset = torch.stack([xs - (w - 1) / 2, ys - (h - 1) / 2], dim=-1)
        ph, pw = photo.shape[-2:]
        frames = []
        for t in range(self.frames):
            at = centres[t] + offset * self.zoom**-t
            grid = at / torch.tensor([pw - 1, ph - 1], dtype=torch.float64) * 2 - 1
            frames.append(
                F.grid_sample(photo, grid[None].float(), mode="bicubic", align_corners=True)
            )
        return torch.cat(frames).clamp(0, 1)

    def flow(self) -> Tensor:
        """The true backward flow from any frame to the one before, ``[1, 2, h, w]`` (see
        :mod:`render.motion.flow`): ``warp(frame[t], flow) == frame[t + 1]`` where the
        source is inside the frame."""
        h, w = self.size
        ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        dx = self.shift[0] + (xs - (w - 1) / 2) * (1 / self.zoom - 1)
        dy = self.shift[1] + (ys - (h - 1) / 2) * (1 / self.zoom - 1)
        return torch.stack([dx, dy])[None]

    def write(
        self, path: str | os.PathLike[str], tone: float | None = 440.0, rate: int = 16000
    ) -> None:
        """The clip as an MP4 (H.264 at high quality) with a sine ``tone`` (Hz) as AAC audio
        as long as the video (no audio when ``tone`` is None)."""
        with av.open(str(path), "w", format="mp4") as out:
            video = out.add_stream("libx264", rate=self.fps, options={"crf": "12"})
            video.height, video.width = self.size
            video.pix_fmt = "yuv420p"
            audio = None if tone is None else out.add_stream("aac", rate=rate, layout="mono")
            frames = (self.video() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for rgb in frames:
                out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            out.mux(video.encode(None))
            if audio is None or tone is None:
                return
            samples = round(rate * Fraction(self.frames, self.fps))
            wave = (0.3 * np.sin(2 * np.pi * tone * np.arange(samples) / rate)).astype(np.float32)
            chunk = audio.frame_size or 1024
            for start in range(0, samples, chunk):
                frame = av.AudioFrame.from_ndarray(
                    wave[None, start : start + chunk], format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = rate, start
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
