"""Where a layer's channels are, read back as an NCHW map whatever the network's layout.

Convolutional layers give NCHW maps; Swin and the MLPs of ConvNeXt's blocks give NHWC maps;
ViT and DeiT give token sequences ``[n, prefix + h * w, C]`` whose first ``prefix`` tokens
(class, distillation, register) belong to no position, and Swin's MLPs give ``[n, h * w, C]``.
The layout of each layer is measured, not looked up by family: the network runs on two square
images of different sizes, and the axes whose length follows the image are the spatial ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Size, Tensor

NCHW = "nchw"
NHWC = "nhwc"
TOKENS = "tokens"


@dataclass(frozen=True)
class Layout:
    """How one layer lays out its output; ``to_nchw`` maps it to ``[n, C, h, w]``."""

    kind: str  # NCHW, NHWC or TOKENS
    prefix: int = 0  # TOKENS: tokens before the patch grid, dropped
    stride: float = 1.0  # TOKENS: image pixels per token, to find the grid of any image

    def to_nchw(self, output: Tensor, image_size: tuple[int, int]) -> Tensor:
        """``output`` of this layer for images of ``image_size`` (h, w), as ``[n, C, h, w]``."""
        if self.kind == NCHW:
            return output
        if self.kind == NHWC:
            return output.permute(0, 3, 1, 2)
        patches = output[:, self.prefix :]
        rows, cols = self.grid(patches.shape[1], image_size)
        return patches.unflatten(1, (rows, cols)).permute(0, 3, 1, 2)

    def grid(self, count: int, image_size: tuple[int, int]) -> tuple[int, int]:
        """The (rows, columns) of ``count`` patch tokens of an image of ``image_size``.

        A network rounds partial patches up (padding) or down (cropping): either fits.
        """
        rows = _rounded(image_size[0] / self.stride)
        cols = _rounded(image_size[1] / self.stride)
        for grid in ((r, c) for r in rows for c in cols):
            if grid[0] * grid[1] == count:
                return grid
        raise RuntimeError(
            f"{count} tokens form no grid of stride {self.stride:g} for a "
            f"{image_size[0]}x{image_size[1]} image"
        )


def _rounded(cells: float) -> tuple[int, ...]:
    # The tolerance absorbs float error in a stride measured as size / side.
    return tuple(dict.fromkeys((math.floor(cells + 1e-6), math.ceil(cells - 1e-6))))


def _side(count: int) -> int | None:
    """The side of a square of ``count`` cells, or None."""
    side = math.isqrt(max(count, 0))
    return side if side > 0 and side * side == count else None


def infer_layout(
    small: Size, large: Size | None, sizes: tuple[int, int], prefix: int
) -> Layout | None:
    """The layout of a layer whose outputs for one square image of ``sizes[0]`` and of
    ``sizes[1]`` pixels are shaped ``small`` and ``large``; None if it is no spatial map.

    ``large`` is None for a network that takes one size only: then a 4-D output is NCHW, as
    convolutional networks' are, and a 3-D one is tokens if all but ``prefix`` (or all) make a
    square. ``prefix`` is the network's count of non-patch tokens (timm's
    ``num_prefix_tokens``).
    """
    if small[0] != 1 or (large is not None and (len(large) != len(small) or large[0] != 1)):
        return None  # not one map per image (e.g. Swin's attention, batched over windows)
    follows = None if large is None else [a != b for a, b in zip(small[1:], large[1:], strict=True)]
    if len(small) == 4:
        if follows is None or follows in ([False, True, True], [False, False, False]):
            return Layout(NCHW)  # (constant 1x1 maps, e.g. squeeze-excitation, stay NCHW too)
        return Layout(NHWC) if follows == [True, True, False] else None
    if len(small) != 3 or follows not in (None, [True, False]):
        return None
    for skip in dict.fromkeys((prefix, 0)):
        side = _side(small[1] - skip)
        other = None if large is None else _side(large[1] - skip)
        if side is not None and (large is None or other not in (None, side)):
            return Layout(TOKENS, prefix=skip, stride=sizes[0] / side)
    return None
