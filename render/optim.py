"""Optimisers that are not in torch: DeepDream's normalised gradient step."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from render.errors import UserError


class NormalizedSGD(torch.optim.Optimizer):
    """The classic DeepDream step: ``p += lr * g / mean(|g|)``, for each tile on its own.

    Each row of a parameter (one tile: the tile store hands the optimiser a batch ``[n, ...]``)
    is normalised by the mean magnitude of its own gradient, so every tile moves by ``lr`` on
    average per step whatever the scale of the objective; ``maximize`` is not needed since the
    renderer minimises ``-score``. No state is kept between steps.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 0.02, eps: float = 1e-8) -> None:
        """``lr``: mean step per parameter; ``eps`` keeps a zero gradient finite."""
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise UserError(f"optim.lr must be a number > 0, got {lr!r}")
        super().__init__(params, {"lr": float(lr), "eps": float(eps)})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Take one normalised step on every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                rows = grad.reshape(grad.shape[0], -1) if grad.dim() > 1 else grad.reshape(1, -1)
                scale = rows.abs().mean(dim=1).add_(group["eps"])
                shape = (-1,) + (1,) * (grad.dim() - 1) if grad.dim() > 1 else (1,)
                p.sub_(grad / scale.reshape(shape), alpha=group["lr"])
        return loss
