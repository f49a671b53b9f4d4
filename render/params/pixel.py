"""Plain pixel parameterisation: one pre-sigmoid value per pixel and (decorrelated) channel."""

from __future__ import annotations

import torch
from torch import Tensor

from render.params.base import Parameterization, check_init_std


class PixelParam(Parameterization):
    """Lucid's pixel image: params [3, H, W] -> colour decorrelation -> sigmoid."""

    def __init__(
        self, tile_size: tuple[int, int], init_std: float = 0.01, decorrelate: bool = True
    ) -> None:
        """Build the codec for ``tile_size`` tiles; ``init`` draws N(0, init_std) parameters."""
        super().__init__(tile_size, decorrelate=decorrelate)
        self.init_std = check_init_std(init_std)

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of one tile's parameters: ``(3, H, W)``."""
        return (3, *self.tile_size)

    def init(self, n: int, generator: torch.Generator) -> Tensor:
        """Return ``n`` tiles of N(0, init_std) params (float32, CPU) from ``generator`` alone."""
        return self._randn(n, generator, self.init_std)

    def decode(self, params: Tensor) -> Tensor:
        """Map params [n, 3, H, W] to RGB tiles [n, 3, H, W] in (0, 1)."""
        dtype = self._check_params(params)
        return self._to_rgb(params.to(dtype)).to(params.dtype)

    def encode(self, images: Tensor) -> Tensor:
        """Map RGB tiles [n, 3, H, W], clamped to [EPS, 1 - EPS], to params; inverts ``decode``."""
        dtype = self._check_images(images)
        return self._from_rgb(images.to(dtype)).to(images.dtype)

    def extra_repr(self) -> str:
        """Show the settings in ``repr``."""
        return f"{super().extra_repr()}, init_std={self.init_std}"
