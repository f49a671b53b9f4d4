"""Lucid's colour decorrelation: a fixed 3x3 channel mix learnt on ImageNet statistics."""

from __future__ import annotations

import torch
from torch import Tensor

# Square root of ImageNet's RGB colour covariance, as published with Lucid
# (``color_correlation_svd_sqrt``). Optimising in the space it maps from gives each
# decorrelated channel roughly unit variance, which makes plain gradient steps much
# better conditioned than optimising raw RGB.
IMAGENET_COLOR_CORRELATION_SQRT: tuple[tuple[float, float, float], ...] = (
    (0.26, 0.09, 0.02),
    (0.27, 0.00, -0.05),
    (0.27, -0.09, 0.03),
)


def color_correlation_matrix() -> Tensor:
    """Return Lucid's colour matrix (float64, CPU): the sqrt over its largest column norm."""
    sqrt = torch.tensor(IMAGENET_COLOR_CORRELATION_SQRT, dtype=torch.float64)
    # Normalising by the largest column norm keeps decorrelated unit-variance noise at
    # most unit variance per RGB channel, as in Lucid's ``color_correlation_normalized``.
    return sqrt / torch.linalg.vector_norm(sqrt, dim=0).max()


def color_correlation_inverse() -> Tensor:
    """Return the exact inverse of :func:`color_correlation_matrix` (float64, CPU)."""
    return torch.linalg.inv(color_correlation_matrix())


def mix_channels(images: Tensor, matrix: Tensor) -> Tensor:
    """Apply ``matrix`` to the channels of ``images`` [n, 3, H, W] (Lucid's ``t @ C.T``)."""
    return torch.einsum("ij,njhw->nihw", matrix, images)
