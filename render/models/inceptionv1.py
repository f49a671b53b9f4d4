"""InceptionV1 ("inception5h"), the network of Lucid, Lucent, captum and neural-dream.

The module names are the ones those libraries hook (``mixed3a`` ... ``mixed5b``, ``conv2d0``,
and the pre-ReLU convolutions such as ``mixed4d_3x3_pre_relu_conv``), and its state dict is
the weight file Lucent users already have (``inception5h.pth``), key for key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from render.errors import UserError
from render.models.feature import FeatureModel

WEIGHTS_FILE = "inception5h.pth"
WEIGHTS_URL = (
    "https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"
)
# The TF graph takes 255 * x - 117 for RGB x in [0, 1], i.e. (x - 117/255) / (1/255).
INCEPTION5H_MEAN = (117 / 255,) * 3
INCEPTION5H_STD = (1 / 255,) * 3
NUM_CLASSES = 1008


class _LRNArgs(TypedDict):
    """``nn.LocalResponseNorm``'s keyword arguments."""

    size: int
    alpha: float
    beta: float
    k: float


# Local response normalisation of the stem, as in the TF graph.
LRN: _LRNArgs = {"size": 9, "alpha": 9.99999974738e-05, "beta": 0.5, "k": 1.0}


class Mixed(NamedTuple):
    """Channels of one inception block's branches."""

    name: str
    inputs: int
    b1x1: int
    b3x3_bottleneck: int
    b3x3: int
    b5x5_bottleneck: int
    b5x5: int
    pool_reduce: int

    @property
    def outputs(self) -> int:
        return self.b1x1 + self.b3x3 + self.b5x5 + self.pool_reduce


# In order; a stride-2 max pool (named by the TF graph) comes before mixed4a and mixed5a.
BLOCKS = (
    Mixed("mixed3a", 192, 64, 96, 128, 16, 32, 32),
    Mixed("mixed3b", 256, 128, 128, 192, 32, 96, 64),
    Mixed("mixed4a", 480, 192, 96, 204, 16, 48, 64),
    Mixed("mixed4b", 508, 160, 112, 224, 24, 64, 64),
    Mixed("mixed4c", 512, 128, 128, 256, 24, 64, 64),
    Mixed("mixed4d", 512, 112, 144, 288, 32, 64, 64),
    Mixed("mixed4e", 528, 256, 160, 320, 32, 128, 128),
    Mixed("mixed5a", 832, 256, 160, 320, 48, 128, 128),
    Mixed("mixed5b", 832, 384, 192, 384, 48, 128, 128),
)
POOL_BEFORE = {"mixed4a": "maxpool4", "mixed5a": "maxpool10"}


class Concat(nn.Module):
    """Channel concatenation as a module, so that a block's output can be hooked by name."""

    def forward(self, *branches: Tensor) -> Tensor:
        return torch.cat(branches, dim=1)


class MaxPoolSame(nn.Module):
    """3x3 max pool with TF's "SAME" padding (-inf), as a module so it can be hooked."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride
        # Stride 2 pads right/bottom only (TF "SAME" on even sizes); stride 1 pads all sides.
        self.pad = (0, 1, 0, 1) if stride == 2 else (1, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.pad(x, self.pad, value=float("-inf")), 3, self.stride)


class InceptionV1(nn.Module):
    """InceptionV1 as in ``inception5h.pth``; ``forward`` returns the 1008 logits."""

    def __init__(self) -> None:
        super().__init__()
        self._conv("conv2d0", 3, 64, 7, stride=2)
        self.maxpool0 = MaxPoolSame(2)
        self.localresponsenorm0 = nn.LocalResponseNorm(**LRN)
        self._conv("conv2d1", 64, 64, 1)
        self._conv("conv2d2", 64, 192, 3)
        self.localresponsenorm1 = nn.LocalResponseNorm(**LRN)
        self.maxpool1 = MaxPoolSame(2)
        for block in BLOCKS:
            if block.name in POOL_BEFORE:
                setattr(self, POOL_BEFORE[block.name], MaxPoolSame(2))
            n = block.name
            self._conv(f"{n}_1x1", block.inputs, block.b1x1, 1)
            self._conv(f"{n}_3x3_bottleneck", block.inputs, block.b3x3_bottleneck, 1)
            self._conv(f"{n}_5x5_bottleneck", block.inputs, block.b5x5_bottleneck, 1)
            setattr(self, f"{n}_pool", MaxPoolSame(1))
            self._conv(f"{n}_pool_reduce", block.inputs, block.pool_reduce, 1)
            self._conv(f"{n}_3x3", block.b3x3_bottleneck, block.b3x3, 3)
            self._conv(f"{n}_5x5", block.b5x5_bottleneck, block.b5x5, 5)
            setattr(self, n, Concat())
        self.avgpool0 = nn.AdaptiveAvgPool2d(1)
        self.softmax2_pre_activation_matmul = nn.Linear(1024, NUM_CLASSES)

    def _conv(self, name: str, inputs: int, outputs: int, kernel: int, stride: int = 1) -> None:
        # Registered as `<name>_pre_relu_conv` (the weight file's keys) and `<name>` (the ReLU).
        setattr(self, f"{name}_pre_relu_conv", nn.Conv2d(inputs, outputs, kernel, stride))
        setattr(self, name, nn.ReLU())

    def _apply_conv(self, name: str, x: Tensor) -> Tensor:
        conv: nn.Conv2d = getattr(self, f"{name}_pre_relu_conv")
        k = conv.kernel_size[0]
        if conv.stride[0] == 2:
            x = F.pad(x, (2, 3, 2, 3))  # TF "SAME" for the 7x7, stride-2 stem on even sizes
        elif k > 1:
            x = F.pad(x, (k // 2,) * 4)
        return getattr(self, name)(conv(x))

    def features(self, x: Tensor) -> Tensor:
        """``mixed5b`` for images normalised as the TF graph expects (255 * x - 117)."""
        x = self.localresponsenorm0(self.maxpool0(self._apply_conv("conv2d0", x)))
        x = self._apply_conv("conv2d2", self._apply_conv("conv2d1", x))
        x = self.maxpool1(self.localresponsenorm1(x))
        for block in BLOCKS:
            if block.name in POOL_BEFORE:
                x = getattr(self, POOL_BEFORE[block.name])(x)
            n = block.name
            branches = (
                self._apply_conv(f"{n}_1x1", x),
                self._apply_conv(f"{n}_3x3", self._apply_conv(f"{n}_3x3_bottleneck", x)),
                self._apply_conv(f"{n}_5x5", self._apply_conv(f"{n}_5x5_bottleneck", x)),
                self._apply_conv(f"{n}_pool_reduce", getattr(self, f"{n}_pool")(x)),
            )
            x = getattr(self, n)(*branches)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.softmax2_pre_activation_matmul(self.avgpool0(self.features(x)).flatten(1))


def default_weights_path() -> Path:
    """Where Lucent's download leaves the file: ``<torch hub dir>/checkpoints/inception5h.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def inceptionv1(path: str | os.PathLike[str] | None = None) -> FeatureModel:
    """InceptionV1 with the weights of ``path`` (default: the torch hub cache), never random."""
    weights = Path(path).expanduser() if path else default_weights_path()
    if not weights.is_file():
        raise UserError(
            f"InceptionV1 needs its weight file {WEIGHTS_FILE} (the one Lucent downloads, "
            f"{WEIGHTS_URL}): place it at {weights} or pass model.path=/path/to/{WEIGHTS_FILE}"
        )
    try:
        state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        raise UserError(f"cannot read the InceptionV1 weights {weights}: {error}") from None
    network = InceptionV1()
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise UserError(
            f"{weights} is not an inception5h state dict: "
            f"{len(missing)} keys missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]}), {len(wrong)} of another shape (e.g. {wrong[:2]})"
        )
    network.load_state_dict(state_dict, strict=True)
    return FeatureModel(
        network,
        INCEPTION5H_MEAN,
        INCEPTION5H_STD,
        name="inceptionv1",
        input_size=224,
        channels_last=True,
        weights_file=weights,
    )
