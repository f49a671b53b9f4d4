"""Files a render leaves in its run directory, each written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import Tensor

from render.recipe import Recipe


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it on success: no truncated files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; outputs are ordinary files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def to_uint8(band: Tensor) -> Tensor:
    """``[c, h, w]`` in [0, 1] (any float dtype or device) to ``[h, w, c]`` uint8 (rounded)."""
    return (
        band.to("cpu", torch.float32, copy=True)
        .mul_(255)
        .add_(0.5)
        .clamp_(0, 255)
        .permute(1, 2, 0)
        .to(torch.uint8)
    )


def to_pil(image: Tensor, rows_per_chunk: int = 256) -> Image.Image:
    """``[1, 3, H, W]`` or ``[3, H, W]`` in [0, 1] to an 8-bit RGB image (rounded).

    Converted a band of rows at a time, so that a huge canvas needs no float temporary of
    its own size.
    """
    image = image.detach().reshape(-1, *image.shape[-2:])
    height, width = image.shape[-2:]
    pixels = torch.empty((height, width, 3), dtype=torch.uint8)
    for top in range(0, height, rows_per_chunk):
        pixels[top : top + rows_per_chunk] = to_uint8(image[:, top : top + rows_per_chunk])
    return Image.fromarray(pixels.numpy(), mode="RGB")


def save_png(image: Tensor, path: Path, recipe: Recipe | None = None) -> None:
    """Write ``image`` as an RGB PNG, atomically, carrying ``recipe`` when given."""
    picture = to_pil(image)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", pnginfo=None if recipe is None else recipe.png_info())


def fit_within(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """``size`` (height, width) scaled down, if needed, so that its longer side is ``longest``."""
    h, w = size
    scale = min(1.0, longest / max(h, w))
    return (h, w) if scale == 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))


class ProgressGif:
    """Small frames of the canvas as it develops, saved as an animated GIF."""

    def __init__(self, max_size: int = 512) -> None:
        """Frames are downscaled so that their longer side is at most ``max_size`` pixels."""
        self.max_size = max_size
        self.frames: list[Image.Image] = []

    def add(self, canvas: Tensor) -> None:
        """Append a frame of ``canvas`` ([1, 3, H, W] in [0, 1])."""
        h, w = canvas.shape[-2:]
        size = fit_within((h, w), self.max_size)
        if size != (h, w):
            canvas = TF.resize(canvas, list(size), antialias=True)
        self.frames.append(to_pil(canvas))

    def save(self, path: Path, recipe: Recipe, duration_ms: int = 150) -> None:
        """Write the frames (resized to the last frame's size, for octaves) as a looping GIF,
        with ``recipe`` as its comment."""
        if not self.frames:
            return
        size = self.frames[-1].size
        # Pillow's default median-cut palette takes about 0.3 s per 448x448 frame (9 s of the
        # default render); fast octree takes a hundredth of that and looks the same in a GIF.
        frames = [
            (f if f.size == size else f.resize(size, Image.Resampling.BILINEAR)).quantize(
                256, method=Image.Quantize.FASTOCTREE
            )
            for f in self.frames
        ]
        with atomic_path(path) as tmp:
            frames[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=frames[1:],
                duration=duration_ms,
                loop=0,
                comment=recipe.text,
            )
