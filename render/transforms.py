"""Lucid's standard robustness transforms, drawn independently for every tile in a batch.

Random choices are drawn on the CPU from the caller's ``torch.Generator`` only, so a seed gives
the same transforms on any device. Every step is differentiable with respect to the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

from render.errors import UserError

#: Lucid's ``random_scale`` choices: 0.9, 0.92, ..., 1.1.
DEFAULT_SCALES: tuple[float, ...] = tuple(1 + (i - 5) / 50 for i in range(11))
#: Lucid's ``random_rotate`` choices in degrees (Lucid also appends five extra zeros).
DEFAULT_ANGLES: tuple[float, ...] = tuple(float(a) for a in range(-10, 11))


def _non_negative_int(name: str, value: object) -> int:
    """Return ``value`` or raise UserError unless it is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"transforms.{name} must be an integer >= 0 (pixels), got {value!r}")
    return value


def _finite(name: str, value: object) -> float:
    """Return ``value`` as a float or raise UserError unless it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"transforms.{name} must be a finite number, got {value!r}")
    return float(value)


def _choices(name: str, values: Iterable[float], positive: bool) -> tuple[float, ...]:
    """Return a non-empty tuple of finite (and, if ``positive``, > 0) numbers or raise UserError."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise UserError(f"transforms.{name} must be a list of numbers, got {values!r}")
    out = tuple(_finite(name, v) for v in values)
    if not out:
        raise UserError(f"transforms.{name} must list at least one value, got an empty list")
    if positive and min(out) <= 0:
        raise UserError(f"transforms.{name} must all be > 0, got {list(out)}")
    return out


def _check_generator(generator: torch.Generator) -> None:
    """Raise ValueError unless ``generator`` is a CPU ``torch.Generator``."""
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"transforms need a CPU torch.Generator, got {generator!r}")


#: One generator for the whole batch, or one per tile (each tile's draw from its own stream).
Generators = Union[torch.Generator, Sequence[torch.Generator]]  # noqa: UP007


class RobustnessTransforms(torch.nn.Module):
    """Pad, jitter, scale, rotate, jitter again: Lucid's ``standard_transforms``, per tile.

    Output tiles are ``H + 2 * pad - jitter - final_jitter`` by the same in width, all equal so
    the batch stacks. Jitters are random crops (offsets 0..d inclusive, as Lucid's
    ``random_crop``). Unlike Lucid, which resizes the whole batch, each tile gets its own scale:
    scale and rotation are one bilinear affine warp about the centre of the jittered tile that
    keeps its size, i.e. Lucid's resize followed by a centre crop (scale > 1) or ``pad_value``
    border (scale < 1) back to the scale-1 size, with a single resampling instead of two.
    Whatever the warp brings in from outside the jittered tile is ``pad_value``.

    The whole batch is computed at once: the five steps of each tile compose into one affine
    map from output pixels to input pixels, and one ``affine_grid`` + ``grid_sample`` samples
    every warped tile (bilinear, zeros outside the image after subtracting ``pad_value``, which
    is then added back: the same as padding with the constant). Tiles drawn with scale 1 and
    angle 0 are pure integer shifts; they are sampled the same way but at the nearest pixel
    (one more ``grid_sample`` call when a batch holds both kinds), so float32 rounding in the
    grid cannot blend in neighbours and they equal pad + crop to within 1e-6.
    """

    def __init__(
        self,
        pad: int = 12,
        pad_value: float = 0.5,
        jitter: int = 8,
        scales: Iterable[float] | None = None,
        angles: Iterable[float] | None = None,
        final_jitter: int = 4,
    ) -> None:
        """Validate and store the transform ranges (pixels, scale factors, degrees)."""
        super().__init__()
        self.pad = _non_negative_int("pad", pad)
        self.pad_value = _finite("pad_value", pad_value)
        self.jitter = _non_negative_int("jitter", jitter)
        self.scales = DEFAULT_SCALES if scales is None else _choices("scales", scales, True)
        self.angles = DEFAULT_ANGLES if angles is None else _choices("angles", angles, False)
        self.final_jitter = _non_negative_int("final_jitter", final_jitter)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Return the size of the transformed tiles for input tiles of ``height`` x ``width``."""
        shrink = self.jitter + self.final_jitter - 2 * self.pad
        out = (height - shrink, width - shrink)
        if min(out) < 1:
            raise UserError(
                f"tiles of {height}x{width} are too small for transforms with pad={self.pad}, "
                f"jitter={self.jitter}, final_jitter={self.final_jitter}: jitter + final_jitter "
                f"must be less than 2 * pad + the tile size"
            )
        return out

    def _is_identity(self) -> bool:
        """Return whether every draw leaves the tiles unchanged (no pad, jitter, scale, angle)."""
        return (
            self.pad == self.jitter == self.final_jitter == 0
            and set(self.scales) == {1.0}
            and set(self.angles) == {0.0}
        )

    def _draw(self, n: int, generator: Generators) -> dict[str, Tensor]:
        """Draw the random parameters of ``n`` tiles from ``generator`` (CPU tensors).

        Given one generator per tile, each tile's parameters are its generator's first draw,
        so a tile is transformed the same way whichever tiles share its batch.

        The order is fixed, so a seed gives the same transforms on any device: first-jitter
        offsets ``first`` [n, 2] as (top, left) in 0..jitter, ``scale`` [n] (indices into
        ``scales``, returned as values), ``angle`` [n] (likewise, degrees), final-jitter offsets
        ``last`` [n, 2] as (top, left) in 0..final_jitter. Nothing else is drawn.
        """
        if not isinstance(generator, torch.Generator):
            if len(generator) != n:
                raise ValueError(f"{len(generator)} generators for a batch of {n} tiles")
            draws = [self._draw(1, one) for one in generator] or [self._draw(0, torch.Generator())]
            return {key: torch.cat([draw[key] for draw in draws]) for key in draws[0]}
        _check_generator(generator)
        first = torch.randint(0, self.jitter + 1, (n, 2), generator=generator)
        scale_idx = torch.randint(0, len(self.scales), (n,), generator=generator)
        angle_idx = torch.randint(0, len(self.angles), (n,), generator=generator)
        last = torch.randint(0, self.final_jitter + 1, (n, 2), generator=generator)
        f64 = torch.float64
        return {
            "first": first,
            "scale": torch.tensor(self.scales, dtype=f64)[scale_idx],
            "angle": torch.tensor(self.angles, dtype=f64)[angle_idx],
            "last": last,
        }

    def _theta(self, params: dict[str, Tensor], height: int, width: int) -> Tensor:
        """Return the [n, 2, 3] float64 ``affine_grid`` matrices of the drawn transforms.

        In pixel indices (x right, y down, pixel centres at integers), with ``align_corners=
        False`` pixel ``i`` of an axis of size ``s`` sits at normalised ``(2 i + 1) / s - 1``,
        so normalised ``u`` of the output is ``s_out / 2 * u`` pixels from the output centre.
        The final crop puts the output centre ``last - final_jitter / 2`` from the centre of the
        warped tile; TF.affine samples ``M`` times that offset from the centre ``(size - 1) / 2``
        of the jittered tile, where ``M = [[cos, sin], [-sin, cos]] / scale``; and the jittered
        tile's pixel ``q`` is input pixel ``q + first - pad``.
        """
        out_h, out_w = self.output_size(height, width)
        mid_h, mid_w = out_h + self.final_jitter, out_w + self.final_jitter
        first, last = params["first"].to(torch.float64), params["last"].to(torch.float64)
        rad = torch.deg2rad(params["angle"])
        cos, sin = torch.cos(rad) / params["scale"], torch.sin(rad) / params["scale"]
        # Offset of the output centre from the warp centre, then the input pixel it comes from.
        dx, dy = last[:, 1] - self.final_jitter / 2, last[:, 0] - self.final_jitter / 2
        x0 = cos * dx + sin * dy + (mid_w - 1) / 2 + first[:, 1] - self.pad
        y0 = -sin * dx + cos * dy + (mid_h - 1) / 2 + first[:, 0] - self.pad
        theta = [
            [cos * out_w / width, sin * out_h / width, (2 * x0 + 1) / width - 1],
            [-sin * out_w / height, cos * out_h / height, (2 * y0 + 1) / height - 1],
        ]
        return torch.stack([torch.stack(row, dim=-1) for row in theta], dim=-2)

    def locate(self, n: int, height: int, width: int, generator: Generators) -> Tensor:
        """Where each output pixel of :meth:`forward` samples its tile: ``[n, h, w, 2]``, (x, y)
        in ``[-1, 1]`` of the input tile (``grid_sample``'s grid, ``align_corners=False``).

        Given a generator in the same state as :meth:`forward`'s, it draws the same transforms,
        so spatial objectives can weight what the model sees by where it lies on the canvas.
        """
        out_h, out_w = self.output_size(height, width)
        theta = self._theta(self._draw(n, generator), height, width)
        return F.affine_grid(theta, [n, 1, out_h, out_w], align_corners=False).float()

    def _keep_first_crop(self, params: dict[str, Tensor], images: Tensor) -> Tensor:
        """Return [n, 1, H, W] ones inside each tile's first-jitter crop, zeros outside.

        Only needed when ``jitter > pad``: otherwise every crop holds the whole image.
        """
        height, width = images.shape[-2:]
        # Host-to-device copies here and below never wait for the device (non_blocking).
        lo = (params["first"] - self.pad).to(images.device, non_blocking=True)
        size = torch.tensor([height, width]) + 2 * self.pad - self.jitter
        hi = lo + size.to(images.device, non_blocking=True)
        rows = torch.arange(height, device=images.device)
        cols = torch.arange(width, device=images.device)
        keep_r = (rows >= lo[:, :1]) & (rows < hi[:, :1])
        keep_c = (cols >= lo[:, 1:]) & (cols < hi[:, 1:])
        return (keep_r[:, None, :, None] & keep_c[:, None, None, :]).to(images.dtype)

    def forward(self, images: Tensor, generator: Generators) -> Tensor:
        """Transform each tile of ``images`` [n, C, H, W] with its own draw from ``generator``
        (one generator for the batch, or one per tile).

        Random numbers come from ``generator`` only (see :meth:`_draw`); the sampling runs on the
        images' device, in their dtype (float32 for lower precision, then cast back).
        """
        if images.dim() != 4:
            raise ValueError(f"expected images [n, C, H, W], got shape {list(images.shape)}")
        n, channels, height, width = images.shape
        out_h, out_w = self.output_size(height, width)
        params = self._draw(n, generator)
        if self._is_identity():
            return images
        if n == 0:
            return images.new_empty((0, channels, out_h, out_w))

        dtype = torch.promote_types(images.dtype, torch.float32)
        shifted = images.to(dtype) - self.pad_value
        theta = self._theta(params, height, width).to(dtype).to(images.device, non_blocking=True)
        warped = ((params["scale"] != 1) | (params["angle"] != 0)).tolist()
        if self.jitter > self.pad and any(warped):
            # A warp can reach past the first crop, which held pad_value there, into the image.
            shifted = shifted * self._keep_first_crop(params, shifted)

        def sample(idx: list[int], mode: str) -> Tensor:
            select: slice | Tensor = (
                slice(None)
                if len(idx) == n
                else torch.tensor(idx).to(images.device, non_blocking=True)
            )
            grid = F.affine_grid(
                theta[select], [len(idx), channels, out_h, out_w], align_corners=False
            )
            return F.grid_sample(
                shifted[select], grid, mode=mode, padding_mode="zeros", align_corners=False
            )

        # Integer shifts sample exact pixels: rounding in a float32 grid would otherwise blend in
        # up to ~1e-4 of a neighbour. Bilinear at exact pixel centres is the same thing.
        groups = [
            ([i for i in range(n) if warped[i] == is_warped], mode)
            for is_warped, mode in ((True, "bilinear"), (False, "nearest"))
        ]
        parts = [(idx, sample(idx, mode)) for idx, mode in groups if idx]
        if len(parts) == 1:
            out = parts[0][1]
        else:
            order = torch.argsort(torch.tensor(parts[0][0] + parts[1][0]))
            out = torch.cat([p for _, p in parts])[order.to(images.device, non_blocking=True)]
        return (out + self.pad_value).to(images.dtype)

    def extra_repr(self) -> str:
        """Show the settings in ``repr``."""
        return (
            f"pad={self.pad}, pad_value={self.pad_value}, jitter={self.jitter}, "
            f"scales={list(self.scales)}, angles={list(self.angles)}, "
            f"final_jitter={self.final_jitter}"
        )


class NoTransforms(torch.nn.Module):
    """No robustness transforms (config ``transforms=none``): returns the tiles unchanged."""

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Return ``(height, width)``: tiles keep their size."""
        return (height, width)

    def locate(
        self, n: int, height: int, width: int, generator: Generators | None = None
    ) -> Tensor:
        """Each output pixel samples its own pixel: the identity grid ``[n, h, w, 2]``."""
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(n, 2, 3)
        return F.affine_grid(identity, [n, 1, height, width], align_corners=False)

    def forward(self, images: Tensor, generator: Generators | None = None) -> Tensor:
        """Return ``images`` as given; ``generator`` is accepted for a common signature."""
        return images
