"""MaCo (Fel et al., NeurIPS 2023): only the Fourier phase is learnt, under a fixed magnitude.

A tile is ``irfft2(M * exp(i * phase))`` with ``M`` a natural-image amplitude spectrum (in
Lucid's decorrelated colour space), then the colour mix and the sigmoid that every
parameterisation here ends with. The magnitude, and with it the tile's contrast and its share
of each frequency, stays that of a photograph whatever the objective does.

Departures from the papers' code (Xplique's and horama's ``maco``), each for the tiled codec:
the phase and the image are not standardised by batch statistics (a tile must decode alone, and
``encode`` must invert ``decode``); ``M`` is scaled once instead, so that a tile's
decorrelated channels have the standard deviation ``image_std`` (1 in the papers). The initial
phase is a wide normal (``init_std`` 3, nearly uniform on the circle) rather than N(0, 1),
whose coherent part draws a bright spot at every tile's corner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from render.errors import UserError
from render.params.base import Parameterization, check_init_std
from render.params.color import color_correlation_inverse, mix_channels

#: The shipped spectrum (docs/guide/maco.md says which photographs made it).
SHIPPED_SPECTRUM = Path(__file__).resolve().parent.parent / "assets" / "maco_spectrum.pt"


def image_amplitudes(images: Tensor) -> Tensor:
    """Amplitude spectra ``|rfft2|`` (ortho) of RGB ``images`` [n, 3, H, W] in [0, 1], per
    decorrelated colour channel, grey (0.5) at zero: what :class:`MacoParam`'s spectrum is a
    mean of (``x - 0.5`` is the sigmoid's input up to a factor, which ``image_std`` sets)."""
    z = mix_channels(images.double() - 0.5, color_correlation_inverse())
    return torch.fft.rfft2(z, norm="ortho").abs()


def mean_spectrum(crops: Iterable[Tensor]) -> Tensor:
    """The mean of :func:`image_amplitudes` over batches of crops of one size, float32."""
    total, count = None, 0
    for batch in crops:
        amplitudes = image_amplitudes(batch).sum(0)
        total = amplitudes if total is None else total + amplitudes
        count += len(batch)
    if total is None or count == 0:
        raise UserError("a spectrum needs at least one image")
    return (total / count).float()


def save_spectrum(path: Path, magnitude: Tensor, size: tuple[int, int], sources: list[str]) -> None:
    """Write a spectrum file: the magnitude [3, H, W // 2 + 1] (float16), its size, its images."""
    torch.save({"magnitude": magnitude.half(), "size": list(size), "sources": sources}, Path(path))


def load_spectrum(path: str | Path | None = None) -> tuple[Tensor, tuple[int, int]]:
    """A spectrum file's magnitude (float64) and image size ``(H, W)``; None: the shipped one."""
    path = Path(path) if path is not None else SHIPPED_SPECTRUM
    if not path.is_file():
        raise UserError(
            f"param.spectrum: no file {str(path)!r} "
            "(make one with python scripts/maco_spectrum.py FOLDER --out FILE)"
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        magnitude, (h, w) = saved["magnitude"].double(), saved["size"]
    except Exception as error:
        raise UserError(
            f"param.spectrum: {str(path)!r} is not a spectrum file of "
            f"scripts/maco_spectrum.py ({error})"
        ) from None
    if tuple(magnitude.shape) != (3, h, w // 2 + 1) or not torch.isfinite(magnitude).all():
        raise UserError(
            f"param.spectrum: {str(path)!r} holds a magnitude of shape {list(magnitude.shape)}, "
            f"not finite [3, {h}, {w // 2 + 1}] for its size {h}x{w}"
        )
    return magnitude, (h, w)


def resize_spectrum(magnitude: Tensor, size: tuple[int, int], to: tuple[int, int]) -> Tensor:
    """``magnitude`` [3, H, W//2+1] of ``size`` images, read at the frequencies (cycles per
    pixel) of ``to``-sized images' rfft2 bins: bilinear over the centred spectrum.

    A bin's ortho amplitude is the spectral density at its frequency, whatever the size; the
    DC term is the mean times ``sqrt(H * W)``, so it is rescaled to keep the mean's."""
    (sh, sw), (h, w) = size, to
    shifted = torch.fft.fftshift(magnitude, dim=-2)  # frequency increasing down the rows
    fy = torch.fft.fftfreq(h, dtype=torch.float64) * sh + sh // 2
    fx = torch.fft.rfftfreq(w, dtype=torch.float64) * sw
    # grid_sample's corners are the first and last bins (align_corners); beyond them, the edge.
    gy = 2 * fy / max(sh - 1, 1) - 1
    gx = 2 * fx / max(sw // 2, 1) - 1
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)
    resized = torch.nn.functional.grid_sample(
        shifted[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True
    )[0]
    resized[:, 0, 0] = magnitude[:, 0, 0] * math.sqrt(h * w / (sh * sw))
    return resized


def scaled_to_std(magnitude: Tensor, size: tuple[int, int], std: float) -> Tensor:
    """``magnitude`` times the factor that gives its images the standard deviation ``std``
    over pixels and channels (Parseval; the DC term is the mean, not a deviation)."""
    h, w = size
    weight = torch.full(magnitude.shape[-1:], 2.0, dtype=magnitude.dtype)
    weight[0] = 1.0  # the rfft's columns 0 (and w/2) stand for themselves, the others twice
    if w % 2 == 0:
        weight[-1] = 1.0
    power = magnitude.square() * weight
    variance = (power.sum() - power[:, 0, 0].sum()) / (3 * h * w)
    return magnitude * (std / variance.sqrt().clamp_min(1e-12))


class MacoParam(Parameterization):
    """MaCo's image: a learnt phase under a fixed natural magnitude -> irfft2 -> colour mix ->
    sigmoid. Params of one tile are its rfft2 phase, ``[3, H, W // 2 + 1]``.

    ``encode`` gives an image's own phase and discards its magnitude, so a blend, a pyramid's
    upsampled canvas or a photo re-enters with the natural magnitude: ``decode(encode(x))`` has
    ``x``'s phase (its edges and shapes), not its exact contrast. The bins a real image holds as
    reals (the mean, and the Nyquist rows and columns of even sizes) are ``M * cos(phase)``; there
    ``encode`` keeps ``x``'s value when it is within ``M``.
    """

    def __init__(
        self,
        tile_size: tuple[int, int],
        spectrum: str | None = None,
        image_std: float = 1.0,
        init_std: float = 3.0,
    ) -> None:
        """Build the codec for ``tile_size`` tiles from the spectrum file ``spectrum`` (None:
        the shipped one), scaled to ``image_std``; ``init`` draws N(0, init_std) phases."""
        super().__init__(tile_size, decorrelate=True)
        if (
            isinstance(image_std, bool)
            or not isinstance(image_std, (int, float))
            or not math.isfinite(image_std)
            or image_std <= 0
        ):
            raise UserError(f"param.image_std must be a finite number > 0, got {image_std!r}")
        self.spectrum = spectrum
        self.image_std = float(image_std)
        self.init_std = check_init_std(init_std)
        magnitude, size = load_spectrum(spectrum)
        magnitude = resize_spectrum(magnitude, size, self.tile_size)
        self._register_constant("magnitude", scaled_to_std(magnitude, self.tile_size, image_std))
        self._bins: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of one tile's parameters: ``(3, H, W // 2 + 1)``, the phase of each rfft2 bin."""
        h, w = self.tile_size
        return (3, h, w // 2 + 1)

    def init(self, n: int, generator: torch.Generator) -> Tensor:
        """Return ``n`` tiles of N(0, init_std) phases (float32, CPU) from ``generator`` alone."""
        return self._randn(n, generator, self.init_std)

    def _real_bins(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """The row of each bin's mirror (-ky), the columns a real image holds Hermitian (0 and,
        for even widths, the last) and, among them, the bins that are their own mirror."""
        bins = self._bins.get(device)
        if bins is None:
            h, w = self.tile_size
            rows = torch.arange(h)
            mirror = -rows % h
            columns = torch.zeros(w // 2 + 1, dtype=torch.bool)
            columns[0] = True
            if w % 2 == 0:
                columns[-1] = True  # the Nyquist column
            real = (mirror == rows)[:, None] & columns[None, :]
            bins = (mirror.to(device), columns.to(device), real.to(device))
            self._bins[device] = bins
        return bins

    def decode(self, params: Tensor) -> Tensor:
        """Map phases [n, 3, H, W//2+1] to RGB tiles [n, 3, H, W] in (0, 1)."""
        dtype = self._check_params(params)
        phase = params.to(dtype)
        mirror, columns, real = self._real_bins(phase.device)
        # On the Hermitian columns the image's phase is odd in ky: take the odd part, so every
        # bin keeps the magnitude M (irfft2 would otherwise average a bin with its mirror's).
        odd = (phase - phase[..., mirror, :]) / 2
        angle = torch.where(columns, odd, phase)  # 0 on the bins that are their own mirror
        cos = torch.where(real, torch.cos(phase), torch.cos(angle))
        magnitude = self._constant("magnitude", phase.device, dtype)
        spectrum = torch.complex(magnitude * cos, magnitude * torch.sin(angle))
        image = torch.fft.irfft2(spectrum, s=self.tile_size, norm="ortho")
        return self._to_rgb(image).to(params.dtype)

    def encode(self, images: Tensor) -> Tensor:
        """Map RGB tiles [n, 3, H, W] (clamped to [EPS, 1 - EPS]) to their phases; ``decode``
        of them has the tiles' phase under the fixed magnitude (see the class)."""
        dtype = self._check_images(images)
        spectrum = torch.fft.rfft2(self._from_rgb(images.to(dtype)), norm="ortho")
        magnitude = self._constant("magnitude", spectrum.device, dtype)
        _, _, real = self._real_bins(spectrum.device)
        cosine = (spectrum.real / magnitude.clamp_min(1e-12)).clamp(-1, 1)
        phase = torch.where(real, torch.arccos(cosine), torch.angle(spectrum))
        return phase.to(images.dtype).contiguous()

    def extra_repr(self) -> str:
        """Show the settings in ``repr``."""
        return (
            f"tile_size={self.tile_size}, spectrum={self.spectrum!r}, "
            f"image_std={self.image_std}, init_std={self.init_std}"
        )
