"""Lucid's Fourier parameterisation: a learnt spectrum, scaled towards low frequencies."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from render.errors import UserError
from render.params.base import Parameterization, check_init_std

#: Lucid divides the inverse FFT by this "magic" constant so that the N(0, 0.01) spectrum,
#: whose DC term is scaled up by max(H, W), still starts as a low-contrast grey image.
FOURIER_DIVISOR = 4.0


def frequency_magnitude(height: int, width: int) -> Tensor:
    """Return |f| in cycles per pixel of each rfft2 bin: [height, width // 2 + 1], float64."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def spectrum_scale(height: int, width: int, decay: float) -> Tensor:
    """Return Lucid's per-bin scale ``1 / max(f, 1 / max(H, W)) ** decay`` (float64, CPU)."""
    # The floor at the lowest non-zero frequency keeps the DC bin finite.
    return 1.0 / frequency_magnitude(height, width).clamp_min(1.0 / max(height, width)) ** decay


class FourierParam(Parameterization):
    """Lucid's FFT image: spectrum -> 1/f scale -> irfft2 -> /4 -> decorrelation -> sigmoid.

    Params of one tile are an rfft2 spectrum stored as reals, [3, H, W // 2 + 1, 2].

    The inverse FFT uses ``norm="ortho"``; Lucid's ``scale *= sqrt(H * W)`` together with
    TensorFlow's 1/(H*W)-normalised ``irfft2d`` is the same thing (as in Lucent's
    ``normalized=True``), so no extra sqrt(H * W) factor appears here.
    """

    def __init__(
        self,
        tile_size: tuple[int, int],
        decay: float = 1.0,
        init_std: float = 0.01,
        decorrelate: bool = True,
    ) -> None:
        """Build the codec for ``tile_size`` tiles, spectral ``decay``, N(0, init_std) init."""
        super().__init__(tile_size, decorrelate=decorrelate)
        if (
            isinstance(decay, bool)
            or not isinstance(decay, (int, float))
            or not math.isfinite(decay)
        ):
            raise UserError(f"decay must be a finite number (Lucid uses 1.0), got {decay!r}")
        self.decay = float(decay)
        self.init_std = check_init_std(init_std)
        self._register_constant("scale", spectrum_scale(*self.tile_size, self.decay))

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of one tile's parameters: ``(3, H, W // 2 + 1, 2)`` (real and imaginary parts)."""
        h, w = self.tile_size
        return (3, h, w // 2 + 1, 2)

    def init(self, n: int, generator: torch.Generator) -> Tensor:
        """Return ``n`` tiles of N(0, init_std) spectra (float32, CPU) from ``generator`` alone."""
        return self._randn(n, generator, self.init_std)

    def decode(self, params: Tensor) -> Tensor:
        """Map spectra [n, 3, H, W//2+1, 2] to RGB tiles [n, 3, H, W] in (0, 1)."""
        dtype = self._check_params(params)
        p = params.to(dtype)
        # torch.complex, unlike view_as_complex, accepts non-contiguous rows (e.g. sliced views).
        spectrum = torch.complex(p[..., 0], p[..., 1]) * self._constant("scale", p.device, dtype)
        image = torch.fft.irfft2(spectrum, s=self.tile_size, norm="ortho") / FOURIER_DIVISOR
        return self._to_rgb(image).to(params.dtype)

    def encode(self, images: Tensor) -> Tensor:
        """Map RGB tiles [n, 3, H, W] (clamped to [EPS, 1 - EPS]) to spectra; inverse of ``decode``.

        ``decode`` ignores the imaginary parts of the DC (and even-size Nyquist) bins, so
        ``encode(decode(p))`` equals ``p`` only up to those; it always decodes to the same image.
        """
        dtype = self._check_images(images)
        image = self._from_rgb(images.to(dtype)) * FOURIER_DIVISOR
        scale = self._constant("scale", image.device, dtype)
        spectrum = torch.fft.rfft2(image, norm="ortho") / scale
        return torch.view_as_real(spectrum).to(images.dtype).contiguous()

    def extra_repr(self) -> str:
        """Show the settings in ``repr``."""
        return f"{super().extra_repr()}, decay={self.decay}, init_std={self.init_std}"
