"""Per-tile parameters and optimiser state: a rank's tiles of the canvas, one batch active.

The store may live in host memory while the active batch lives on the accelerator: only rows
of the store move per step, so peak device memory depends on the batch, not on the canvas.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class TileStore:
    """Rows of parameters ``[n, *param_shape]`` of tiles ``first .. first + n - 1`` (a rank's
    own block; all tiles in one process) plus per-tile optimiser state and, for a transparency
    map (render/alpha.py), an accumulator ``[n, h, w]`` beside them. Tile indices given to its
    methods are the canvas's.

    A torch optimiser steps one batch at a time: :meth:`swap_in` builds a fresh parameter from
    the batch's rows and hands the optimiser exactly those rows' state; :meth:`swap_out` writes
    both back. Tiles outside the batch are never touched, so no stale moment moves them.
    """

    def __init__(
        self,
        params: Tensor,
        pin_memory: bool = False,
        state_dtype: torch.dtype | None = None,
        first: int = 0,
        alpha: Tensor | None = None,
    ) -> None:
        """Own ``params`` (one row per tile, from tile ``first``); ``pin_memory`` speeds
        host-to-device copies.

        ``state_dtype`` stores the optimiser's per-element state of idle tiles more compactly
        (bfloat16 halves it); the optimiser still steps in the parameters' dtype. ``alpha``:
        the tiles' transparency accumulators (one row per tile), kept where the rows are.
        """
        self.params = params.pin_memory() if pin_memory else params
        self.alpha = alpha
        self.pin_memory = pin_memory
        self.state_dtype = state_dtype or params.dtype
        self.first = first
        # Tensor state shaped like a parameter row ([T, ...]) or one scalar per tile ([T]); the
        # scalars stay where the optimiser keeps them (plain Adam: the CPU; fused Adam: the
        # device), so a step never copies one back to the host.
        self.state: dict[str, Tensor] = {}
        self.scalar_devices: dict[str, torch.device] = {}
        # Optimiser steps taken by each tile, counted on the host: a batch's tiles must agree
        # on their scalar state, and this checks it without reading the device.
        self.updates = torch.zeros(params.shape[0], dtype=torch.int64)

    @property
    def num_tiles(self) -> int:
        """Number of tiles (rows)."""
        return self.params.shape[0]

    @property
    def tiles(self) -> range:
        """The tile indices this store holds."""
        return range(self.first, self.first + self.num_tiles)

    def updates_of(self, idx: Tensor) -> Tensor:
        """Optimiser steps taken by tiles ``idx``."""
        return self.updates[idx - self.first]

    def _gather(self, rows: Tensor, index: Indices, device: torch.device) -> Tensor:
        batch = rows[index.on(rows)]
        if self.pin_memory and device.type == "cuda":
            return batch.pin_memory().to(device, non_blocking=True)
        return batch.to(device)

    def swap_in(self, idx: Tensor, device: torch.device) -> tuple[nn.Parameter, dict[str, Any]]:
        """A parameter holding rows ``idx`` (a CPU tensor) on ``device`` and their optimiser state.

        Nothing here waits for the device (unless the rows are offloaded to the host).
        """
        idx = idx - self.first
        counts = self.updates[idx]
        if not torch.equal(counts, counts[:1].expand_as(counts)):
            raise RuntimeError(f"tiles {idx.tolist()} of one batch have taken different steps")
        index = Indices(idx)
        param = nn.Parameter(self._gather(self.params, index, device))
        state: dict[str, Any] = {}
        # Tiles not yet stepped start as the optimiser starts them: their rows hold zeros, which
        # is not every optimiser's initial state (NAdam's momentum product starts at 1).
        stepped = self.state if len(counts) and int(counts[0]) > 0 else {}
        for key, rows in stepped.items():
            if rows.dim() == 1:
                first = rows.index_select(0, index.on(rows)[:1]).squeeze(0)
                state[key] = first.to(self.scalar_devices[key], copy=True)
            else:
                state[key] = self._gather(rows, index, device).to(self.params.dtype)
        return param, state

    def swap_out(self, idx: Tensor, param: Tensor, state: dict[str, Any]) -> None:
        """Write a stepped batch and its optimiser state back into rows ``idx`` (a CPU tensor).

        With offloaded rows the write-back to the host waits for the step to finish: the one
        sync per step that a canvas larger than the device costs.
        """
        idx = idx - self.first
        index = Indices(idx)
        self.params[index.on(self.params)] = param.detach().to(self.params.device)
        self.updates[idx] += 1
        for key, value in state.items():
            if not isinstance(value, Tensor):
                continue
            if value.dim() == 0:
                rows = self.state.get(key)
                if rows is None:
                    rows = torch.zeros(self.num_tiles, dtype=value.dtype, device=value.device)
                    self.state[key] = rows
                rows[index.on(rows)] = value.detach()
                self.scalar_devices[key] = value.device
            else:
                rows = self.state.get(key)
                if rows is None:
                    rows = torch.zeros_like(self.params, dtype=self.state_dtype)
                    self.state[key] = rows
                rows[index.on(rows)] = value.detach().to(rows.device, rows.dtype)

    def accumulate(self, idx: Tensor, magnitude: Tensor) -> None:
        """Add ``magnitude`` ``[len(idx), h, w]`` to the transparency accumulators of tiles
        ``idx`` (a CPU tensor); like :meth:`swap_out`, it waits for the device only when the
        rows are offloaded to the host.
        """
        assert self.alpha is not None, "a store without transparency accumulators"
        index = Indices(idx - self.first).on(self.alpha)
        self.alpha.index_add_(0, index, magnitude.detach().to(self.alpha.device, self.alpha.dtype))

    def reset_state(self) -> None:
        """Drop the optimiser state (a new octave starts its tiles' optimisers afresh)."""
        self.state = {}
        self.scalar_devices = {}
        self.updates.zero_()

    def to(self, device: torch.device) -> None:
        """Move the rows (not the per-tile scalars, which stay where the optimiser keeps them)."""
        self.params = self.params.to(device)
        if self.alpha is not None:
            self.alpha = self.alpha.to(device)
        self.state = {k: v.to(device) if v.dim() > 1 else v for k, v in self.state.items()}

    def state_dict(self) -> dict[str, Any]:
        """Tensors to checkpoint."""
        devices = {key: str(device) for key, device in self.scalar_devices.items()}
        return {
            "params": self.params,
            "first": self.first,
            "state": self.state,
            "scalar_devices": devices,
            "updates": self.updates,
            "alpha": self.alpha,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`, keeping this store's device and pinning.

        A store with accumulators keeps them at zero when the checkpoint has none (it was saved
        without ``output.alpha``), and one without ignores the checkpoint's.
        """
        held = range(saved.get("first", 0), saved.get("first", 0) + saved["params"].shape[0])
        if saved["params"].shape[1:] != self.params.shape[1:] or held != self.tiles:
            raise RuntimeError(
                f"checkpoint holds tiles {held.start}..{held.stop - 1} of shape "
                f"{list(saved['params'].shape[1:])}, this store needs tiles "
                f"{self.first}..{self.tiles.stop - 1} of shape {list(self.params.shape[1:])}"
            )
        self.params.copy_(saved["params"])
        self.scalar_devices = {
            key: torch.device(device) for key, device in saved["scalar_devices"].items()
        }
        self.state = {
            key: value.to(self.params.device if value.dim() > 1 else self.scalar_devices[key])
            for key, value in saved["state"].items()
        }
        self.updates = saved["updates"].cpu()
        if self.alpha is not None and saved.get("alpha") is not None:
            self.alpha.copy_(saved["alpha"])


class Indices:
    """Tile indices (a CPU tensor) and their copies on the devices where rows live.

    Indexing a device tensor with a CPU index would copy the index synchronously; here each
    device gets one pinned, asynchronous copy per swap, shared by every row tensor there.
    """

    def __init__(self, idx: Tensor) -> None:
        self._copies = {idx.device: idx}
        self._idx = idx

    def on(self, rows: Tensor) -> Tensor:
        """The indices on ``rows``'s device."""
        if rows.device not in self._copies:
            self._copies[rows.device] = self._idx.pin_memory().to(rows.device, non_blocking=True)
        return self._copies[rows.device]
