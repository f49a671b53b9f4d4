"""Image parameterisations: stateless codecs between per-tile parameters and RGB tiles.

Configs select one with ``_target_: render.params.FourierParam`` (or ``MacoParam``,
``PixelParam``) and its keyword arguments; the caller adds the tile size, e.g.
``hydra.utils.instantiate(cfg.param, tile_size=(h, w))``.
"""

from render.params.base import EPS, Parameterization
from render.params.color import (
    IMAGENET_COLOR_CORRELATION_SQRT,
    color_correlation_inverse,
    color_correlation_matrix,
)
from render.params.fourier import FOURIER_DIVISOR, FourierParam, spectrum_scale
from render.params.maco import MacoParam
from render.params.pixel import PixelParam

__all__ = [
    "EPS",
    "FOURIER_DIVISOR",
    "IMAGENET_COLOR_CORRELATION_SQRT",
    "FourierParam",
    "MacoParam",
    "Parameterization",
    "PixelParam",
    "color_correlation_inverse",
    "color_correlation_matrix",
    "spectrum_scale",
]
