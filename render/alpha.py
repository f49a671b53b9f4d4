"""Transparency maps (MaCo, Fel et al. 2023): where the picture matters to its objective.

Each tile adds up, over the updates of the last octave, the magnitude of the objective's
gradient with respect to its decoded pixels (the image the model is fed, before the robustness
transforms, whatever the parameterisation), one number per tile pixel, kept in the tile store
beside its parameters (render/store.py). The outputs divide every tile's map by one number for
the whole canvas (:func:`alpha_scale`) and blend the tiles' maps as they blend their pixels
(render/strips.py), so the written map is in [0, 1] and seamless where tiles overlap.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from render.peers import distributed, peers_alive

__all__ = ["QUANTILE", "alpha_scale", "magnitude", "unscaled"]

#: The share of the tiles' accumulated values below the one that maps to full opacity. The
#: gradient's magnitude has a long tail (a few pixels where the model's strongest units look
#: collect several times the rest), so dividing by the maximum leaves most of the map nearly
#: black; the 99th percentile keeps the map's contrast and saturates only that tail.
QUANTILE = 0.99
# Histogram bins between 0 and the largest value: the quantile is found to 1/65536 of it, the
# same on any number of processes (counts add up exactly).
_BINS = 1 << 16


def magnitude(grad: Tensor) -> Tensor:
    """``[n, h, w]``: the magnitude of the gradients ``[n, 3, h, w]`` at each pixel, the sum of
    its channels' absolute values (MaCo accumulates each channel's and shows their mean)."""
    return grad.abs().sum(dim=1)


def unscaled(grad: Tensor, scaler: torch.amp.GradScaler | None) -> Tensor:
    """``grad`` as the objective's own when 16-bit mixed precision's ``scaler`` multiplied the
    loss (its scale changes from step to step); pixels whose scaled gradient overflowed (a step
    the scaler skips) count zero."""
    if scaler is None:
        return grad
    grad = grad / scaler.get_scale()
    return torch.where(grad.isfinite(), grad, 0.0)


def alpha_scale(rows: Tensor, device: torch.device) -> float:
    """The value of the accumulators ``rows`` ``[n, h, w]`` (with several processes, every
    rank's: a collective, through ``device``) below which ``QUANTILE`` of their pixels lie: what
    maps to 1. A canvas whose gradients were all zero gets 1 (a map of zeros).
    """
    top = torch.zeros(1, device=device)
    if rows.numel():
        top[0] = rows.max()
    if distributed():
        with peers_alive():
            dist.all_reduce(top, op=dist.ReduceOp.MAX)
    largest = float(top.item())
    if largest <= 0:
        return 1.0
    counts = torch.zeros(_BINS, dtype=torch.int64)
    # A block at a time: a float histogram counts exactly up to 2**24 values in a bin.
    for block in rows.flatten().split(1 << 24):
        counts += torch.histc(block.float(), _BINS, 0, largest).long().cpu()
    counts = counts.to(device)
    if distributed():
        with peers_alive():
            dist.all_reduce(counts)
    cumulative = counts.cpu().cumsum(0)
    below = int(torch.searchsorted(cumulative, QUANTILE * int(cumulative[-1])))
    return largest * (below + 1) / _BINS
