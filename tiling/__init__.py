"""Split NCHW tensors into overlapping tiles and blend them back: a drop-in for blended-tiling."""

from tiling.module import TilingModule

__all__ = ["TilingModule"]
