"""Where a render starts: seeded noise, or a photo (deep dream)."""

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


class ImageInit:
    """Start from a photo, resized to the canvas."""

    def __init__(self, path: str) -> None:
        """Read ``path`` now, so that a bad path fails before any work is done."""
        self.path = find_shipped(path)
        if not self.path.is_file():
            raise UserError(f"init.path {str(self.path)!r} is not a file; give an image file")
        try:
            with Image.open(self.path) as photo:
                self.image = TF.to_image(photo.convert("RGB"))
        except (UnidentifiedImageError, OSError) as error:
            raise UserError(
                f"init.path {str(self.path)!r} is not a readable image ({error}); "
                f"use a PNG, JPEG or another format pillow reads"
            ) from None

    def size(self) -> tuple[int, int]:
        """The photo's (height, width)."""
        return (self.image.shape[-2], self.image.shape[-1])

    def canvas(self, size: tuple[int, int]) -> Tensor:
        """The photo as ``[1, 3, H, W]`` floats in [0, 1], resized to ``size``."""
        image = TF.to_dtype(self.image, torch.float32, scale=True)
        if tuple(image.shape[-2:]) != tuple(size):
            image = TF.resize(image, list(size), antialias=True).clamp(0, 1)
        return image.unsqueeze(0).as_subclass(Tensor)
