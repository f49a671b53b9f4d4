"""Where a render starts: seeded noise, a photo (deep dream), or a canvas in memory (a frame
of a video: the previous frame moved)."""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from render.config import find_shipped
from render.errors import UserError


class NoiseInit:
    """Start from the parameterisation's seeded noise."""

    def size(self) -> tuple[int, int] | None:
        """Noise has no size of its own."""
        return None

    def canvas(self, size: tuple[int, int]) -> Tensor | None:
        """No canvas: the parameterisation draws its own initial parameters."""
        return None


#: How a picture is brought to the canvas's size: stretched to it, or enlarged to cover it and
#: cut to it about the centre (its shape kept).
FITS = ("stretch", "cover")


class CanvasInit:
    """Start from a picture already in memory, brought to the canvas's size."""

    def __init__(self, image: Tensor, fit: str = "stretch") -> None:
        """``image``: ``[3, H, W]`` or ``[1, 3, H, W]``, floats in [0, 1] or uint8; ``fit``: one
        of :data:`FITS`."""
        if fit not in FITS:
            raise UserError(f"init.fit must be one of {list(FITS)}, got {fit!r}")
        self.image, self.fit = image.reshape(-1, *image.shape[-2:]), fit

    def size(self) -> tuple[int, int]:
        """The picture's (height, width)."""
        return (self.image.shape[-2], self.image.shape[-1])

    def canvas(self, size: tuple[int, int]) -> Tensor:
        """The picture as ``[1, 3, H, W]`` floats in [0, 1] of ``size``."""
        image = TF.to_dtype(self.image, torch.float32, scale=True)
        height, width = image.shape[-2:]
        if (height, width) != tuple(size):
            scaled = list(size)
            if self.fit == "cover":
                scale = max(size[0] / height, size[1] / width)
                scaled = [max(size[0], round(height * scale)), max(size[1], round(width * scale))]
            image = TF.resize(image, scaled, antialias=True).clamp(0, 1)
            image = TF.center_crop(image, list(size))
        return image.unsqueeze(0).as_subclass(Tensor)


class ImageInit(CanvasInit):
    """Start from a photo, brought to the canvas's size."""

    def __init__(self, path: str, fit: str = "stretch") -> None:
        """Read ``path`` now, so that a bad path fails before any work is done; ``fit``: one of
        :data:`FITS`."""
        self.path = find_shipped(path)
        if not self.path.is_file():
            raise UserError(f"init.path {str(self.path)!r} is not a file; give an image file")
        try:
            with Image.open(self.path) as photo:
                # Kept as 8 bits: a quarter of the memory of floats, for a photo of any size.
                super().__init__(TF.to_image(photo.convert("RGB")).as_subclass(Tensor), fit)
        except (UnidentifiedImageError, OSError) as error:
            raise UserError(
                f"init.path {str(self.path)!r} is not a readable image ({error}); "
                f"use a PNG, JPEG or another format pillow reads"
            ) from None
