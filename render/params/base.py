"""The codec interface shared by every image parameterisation."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from render.errors import UserError
from render.params.color import color_correlation_inverse, color_correlation_matrix, mix_channels

#: ``encode`` clamps pixels to ``[EPS, 1 - EPS]`` before the logit, so that pure black or
#: white gives finite parameters (logit(1e-4) is about -9.2) instead of infinities.
EPS = 1e-4


def tile_size_tuple(tile_size: Any) -> tuple[int, int]:
    """Return ``tile_size`` (an int or a pair, e.g. a Hydra ``ListConfig``) as ``(h, w)``."""
    message = f"tile_size must be a pair of positive integers (height, width), got {tile_size!r}"
    if isinstance(tile_size, int) and not isinstance(tile_size, bool):
        tile_size = (tile_size, tile_size)
    if isinstance(tile_size, (str, bytes)):
        raise UserError(message)
    try:
        values = tuple(tile_size)
    except TypeError:
        raise UserError(message) from None
    if len(values) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise UserError(message)
    return (values[0], values[1])


def check_init_std(init_std: float) -> float:
    """Return ``init_std`` as a float, or raise UserError unless it is finite and non-negative."""
    if isinstance(init_std, bool) or not isinstance(init_std, (int, float)):
        raise UserError(f"init_std must be a non-negative number, got {init_std!r}")
    if not math.isfinite(init_std) or init_std < 0:
        raise UserError(f"init_std must be a finite number >= 0, got {init_std!r}")
    return float(init_std)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype to compute in: at least float32, since half-precision FFTs are limited."""
    if not dtype.is_floating_point:
        raise TypeError(f"expected a floating-point tensor, got dtype {dtype}")
    return torch.promote_types(dtype, torch.float32)


class Parameterization(torch.nn.Module):
    """A stateless codec between per-tile parameters [n, *param_shape] and RGB tiles [n, 3, H, W].

    The caller owns the parameters (one row per tile, on any device, in any batch), so a
    parameterisation holds only small constants, kept in float64 on the CPU and cached per
    (device, dtype) on first use rather than as buffers, which would pin it to one device.
    """

    def __init__(self, tile_size: tuple[int, int], *, decorrelate: bool = True) -> None:
        """Store the tile size ``(height, width)`` and whether to decorrelate colours."""
        super().__init__()
        self.tile_size = tile_size_tuple(tile_size)
        self.decorrelate = bool(decorrelate)
        self._constants: dict[str, Tensor] = {}
        self._cache: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}
        if self.decorrelate:
            self._register_constant("color", color_correlation_matrix())
            self._register_constant("color_inverse", color_correlation_inverse())

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of one tile's parameters."""
        raise NotImplementedError

    def init(self, n: int, generator: torch.Generator) -> Tensor:
        """Return ``n`` tiles' initial params: float32, CPU, drawn only from ``generator``."""
        raise NotImplementedError

    def decode(self, params: Tensor) -> Tensor:
        """Map parameters [n, *param_shape] to RGB tiles [n, 3, H, W] in (0, 1), differentiably."""
        raise NotImplementedError

    def encode(self, images: Tensor) -> Tensor:
        """Map RGB tiles [n, 3, H, W], clamped to [EPS, 1 - EPS], to params; inverts ``decode``."""
        raise NotImplementedError

    def forward(self, params: Tensor) -> Tensor:
        """Same as :meth:`decode`."""
        return self.decode(params)

    def extra_repr(self) -> str:
        """Show the tile size in ``repr``."""
        return f"tile_size={self.tile_size}, decorrelate={self.decorrelate}"

    # -- helpers for subclasses ------------------------------------------------------------

    def _register_constant(self, name: str, value: Tensor) -> None:
        """Keep ``value`` (float64, CPU) as a named constant; copies are made lazily per device."""
        self._constants[name] = value.detach().to(device="cpu", dtype=torch.float64)
        self._cache = {k: v for k, v in self._cache.items() if k[0] != name}

    def _constant(self, name: str, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Return constant ``name`` on ``device`` in ``dtype``, copying it there once."""
        key = (name, device, dtype)
        cached = self._cache.get(key)
        if cached is None:
            # Cast on the host, copy without waiting: the first render step must not sync either.
            cached = self._constants[name].to(dtype).to(device, non_blocking=True)
            self._cache[key] = cached
        return cached

    def _check_params(self, params: Tensor) -> torch.dtype:
        """Raise ValueError unless ``params`` is [n, *param_shape]; return the compute dtype."""
        if params.dim() != 1 + len(self.param_shape) or tuple(params.shape[1:]) != self.param_shape:
            raise ValueError(
                f"{type(self).__name__} expects params of shape "
                f"[n, {', '.join(map(str, self.param_shape))}], got {list(params.shape)}"
            )
        return _work_dtype(params.dtype)

    def _check_images(self, images: Tensor) -> torch.dtype:
        """Raise ValueError unless ``images`` is [n, 3, H, W]; return the compute dtype."""
        h, w = self.tile_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, h, w):
            raise ValueError(
                f"{type(self).__name__} encodes images of shape [n, 3, {h}, {w}], "
                f"got {list(images.shape)}"
            )
        return _work_dtype(images.dtype)

    def _randn(self, n: int, generator: torch.Generator, std: float) -> Tensor:
        """Return N(0, std) params for ``n`` tiles: float32, CPU, drawn only from ``generator``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"init expects a tile count n >= 0, got {n!r}")
        if generator.device.type != "cpu":
            # Drawing on the CPU keeps the initial canvas identical whatever the accelerator.
            raise ValueError(f"init expects a CPU torch.Generator, got one on {generator.device}")
        shape = (n, *self.param_shape)
        return torch.randn(shape, generator=generator, dtype=torch.float32).mul_(std)

    def _to_rgb(self, t: Tensor) -> Tensor:
        """Lucid's ``to_valid_rgb``: colour decorrelation (if on), then sigmoid."""
        if self.decorrelate:
            t = mix_channels(t, self._constant("color", t.device, t.dtype))
        return torch.sigmoid(t)

    def _from_rgb(self, images: Tensor) -> Tensor:
        """Exact inverse of :meth:`_to_rgb` on [EPS, 1 - EPS]; other pixels are clamped first."""
        t = torch.logit(images.clamp(EPS, 1 - EPS))
        if self.decorrelate:
            t = mix_channels(t, self._constant("color_inverse", t.device, t.dtype))
        return t
