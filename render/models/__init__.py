"""Frozen classifiers for feature visualisation: loaders and the `FeatureModel` wrapper.

`efficientnet_lite0()` is the embedded default and works offline (`efficientnet_lite2()`, the
judge of render/evaluation.py, too); `inceptionv1` (Lucid's and
Lucent's inception5h, from its weight file), `torchvision_model`,
`timm_model`, `clip_model` (open_clip's CLIP), `checkpoint_model` and `from_module` bring other
networks (all usable as Hydra `_target_`s).
"""

from render.models.checkpoint import checkpoint_model, from_module
from render.models.clip import ClipModel, clip_model
from render.models.embedded import efficientnet_lite0, efficientnet_lite2
from render.models.feature import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LOGITS,
    FeatureModel,
    describe_layers,
)
from render.models.hub import resolve_arch, timm_model, torchvision_model
from render.models.inceptionv1 import inceptionv1

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOGITS",
    "ClipModel",
    "FeatureModel",
    "checkpoint_model",
    "clip_model",
    "describe_layers",
    "efficientnet_lite0",
    "efficientnet_lite2",
    "from_module",
    "inceptionv1",
    "resolve_arch",
    "timm_model",
    "torchvision_model",
]
