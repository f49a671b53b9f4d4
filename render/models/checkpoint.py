"""Models from a local checkpoint file, or from any nn.Module (e.g. a Hydra `_target_`)."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from render.errors import UserError
from render.models.embedded import (
    LITE_MEAN,
    LITE_STD,
    imagenet_labels,
    lite_network,
    load_positional,
)
from render.models.feature import IMAGENET_MEAN, IMAGENET_STD, FeatureModel
from render.models.hub import (
    default_torchvision_weights,
    resolve_arch,
    timm_labels,
    timm_network,
    timm_normalisation,
    torchvision_normalisation,
)

# Keys under which training scripts commonly nest the model's state dict.
_NESTING_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module")
# Prefixes that wrappers add to every key (DDP, Lightning attributes, torch.compile, ours).
_PREFIXES = ("module.", "model.", "net.", "network.", "_orig_mod.")


def from_module(
    module: nn.Module,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    *,
    name: str = "",
    input_size: int = 224,
    preprocess: Callable[[Tensor], Tensor] | None = None,
) -> FeatureModel:
    """Wrap any classifier `module` whose input is normalised as (x - mean) / std.

    ``preprocess`` replaces mean/std: a differentiable map from RGB in [0, 1] to its input.
    """
    if not isinstance(module, nn.Module):
        raise UserError(f"from_module needs a torch.nn.Module, got {type(module).__name__}")
    if preprocess is not None and not callable(preprocess):
        raise UserError(f"preprocess must be callable, got {type(preprocess).__name__}")
    return FeatureModel(module, mean, std, name=name, input_size=input_size, preprocess=preprocess)


def _is_torchscript(file: Path) -> bool:
    """Whether `file` is a TorchScript archive (it holds a code/ folder; torch.save's don't)."""
    if not zipfile.is_zipfile(file):
        return False
    with zipfile.ZipFile(file) as archive:
        return any("/code/" in entry for entry in archive.namelist())


def _read(file: Path) -> object:
    """Load a state dict, a pickled nn.Module or a TorchScript module from `file`."""
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file), device="cpu")
    if _is_torchscript(file):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit is deprecated"
            return torch.jit.load(str(file), map_location="cpu")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # A pickled nn.Module needs full unpickling, which runs code from the file; this is
        # a local file the user named explicitly, so it is trusted like their own code.
        return torch.load(file, map_location="cpu", weights_only=False)


def _unwrap(obj: object, file: Path) -> dict[str, Tensor] | nn.Module:
    """Dig the state dict (or module) out of common checkpoint layouts."""
    while isinstance(obj, Mapping) and not all(isinstance(v, Tensor) for v in obj.values()):
        inner = next(
            (obj[k] for k in _NESTING_KEYS if isinstance(obj.get(k), Mapping | nn.Module)), None
        )
        if inner is None:
            keys = ", ".join(map(str, list(obj)[:8]))
            raise UserError(
                f"checkpoint {file} holds a dict without a state dict under any of "
                f"{', '.join(_NESTING_KEYS)} (its keys: {keys})"
            )
        obj = inner
    if isinstance(obj, nn.Module):
        return obj
    if not isinstance(obj, Mapping) or not obj:
        raise UserError(
            f"checkpoint {file} holds a {type(obj).__name__}; expected a state dict, "
            "a pickled nn.Module or a TorchScript module"
        )
    return dict(obj)


def _strip_prefixes(state: dict[str, Tensor], expected: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove wrapper prefixes shared by every key until the keys match the network's."""
    while set(state) != set(expected):
        prefix = next((p for p in _PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _load_into(network: nn.Module, state: dict[str, Tensor], file: Path, arch: str) -> None:
    """Load `state` strictly, or raise UserError saying how it does not fit."""
    expected = network.state_dict()
    state = _strip_prefixes(state, expected)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected:
        raise UserError(
            f"checkpoint {file} does not fit architecture {arch!r}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    if wrong:
        raise UserError(
            f"checkpoint {file} does not fit architecture {arch!r}: shapes differ "
            f"(checkpoint vs model) for {'; '.join(wrong[:3])}; if it was trained for "
            "another number of classes, pass num_classes"
        )
    network.load_state_dict(state, strict=True)


def _drop_absent_aux_heads(network: nn.Module, state: dict[str, Tensor]) -> None:
    """Remove auxiliary heads (GoogLeNet, Inception-v3) that the checkpoint lacks.

    torchvision drops them from pretrained models, so their saved state dicts lack them;
    they only run in training mode, never here.
    """
    state = _strip_prefixes(state, network.state_dict())
    for name, _ in list(network.named_children()):
        if name.lower().startswith("aux") and not any(k.startswith(f"{name}.") for k in state):
            setattr(network, name, None)
            if hasattr(network, "aux_logits"):
                # torch types Module.__setattr__'s value as Tensor | Module; a flag is fine.
                network.aux_logits = False  # type: ignore[assignment]


def _lite0_from(obj: dict[str, Tensor] | nn.Module, file: Path, num_classes: int) -> nn.Module:
    """EfficientNet-Lite0 from timm-named or (by position) lukemelas-named weights."""
    if isinstance(obj, nn.Module):
        return obj
    network = lite_network(0, num_classes)
    state = _strip_prefixes(obj, network.state_dict())
    if set(state) == set(network.state_dict()):
        _load_into(network, state, file, "efficientnet_lite0")
        return network
    try:
        load_positional(network, state, source=str(file))
    except RuntimeError as exc:
        raise UserError(f"checkpoint {file} does not fit efficientnet_lite0: {exc}") from exc
    return network


def checkpoint_model(
    path: str,
    arch: str,
    *,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> FeatureModel:
    """A model from a local file: a state dict for `arch`, a pickled nn.Module or TorchScript.

    `arch` is "efficientnet_lite0", a torchvision classifier or a timm model ("timm:<name>"
    to choose timm when both have the name); it also gives the default normalisation.
    TorchScript modules cannot take forward hooks, so only "logits" can be captured from them.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"checkpoint file {str(path)!r} does not exist; give a readable file path")
    source, name = resolve_arch(arch)
    try:
        obj = _unwrap(_read(file), file)
    except UserError:
        raise
    # Reading an arbitrary file can fail in many ways (zip, pickle, missing classes, I/O);
    # for the user each means the same thing: this file cannot be loaded.
    except Exception as exc:
        raise UserError(f"checkpoint file {file} is unreadable: {exc}".splitlines()[0]) from exc
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": int(num_classes)}
    labels: Sequence[str] | None = None
    default_mean: Sequence[float]
    default_std: Sequence[float]
    input_size = 224
    if source == "embedded":
        network = _lite0_from(obj, file, num_classes or 1000)
        default_mean, default_std = LITE_MEAN, LITE_STD
        labels = imagenet_labels() if num_classes in (None, 1000) else None
    elif source == "torchvision":
        if isinstance(obj, nn.Module):
            network = obj
        else:
            with warnings.catch_warnings():
                # GoogLeNet warns about its random init, which the checkpoint replaces.
                warnings.filterwarnings("ignore", "The default weight init", FutureWarning)
                network = torchvision.models.get_model(name, weights=None, **kwargs)
            _drop_absent_aux_heads(network, obj)
            _load_into(network, obj, file, arch)
        weights = default_torchvision_weights(name)
        if mean is None and std is None:
            # Also switches off GoogLeNet/Inception's transform_input (see the function).
            default_mean, default_std = torchvision_normalisation(network, weights)
        else:
            default_mean, default_std = IMAGENET_MEAN, IMAGENET_STD
        if num_classes in (None, len(weights.meta["categories"])):
            labels = weights.meta["categories"]
    else:
        if isinstance(obj, nn.Module):
            network = obj
        else:
            network = timm_network(name, pretrained=False, **kwargs)
            _load_into(network, obj, file, arch)
        default_mean, default_std = timm_normalisation(network)
        labels = timm_labels(network)
        cfg = getattr(network, "pretrained_cfg", None) or {}
        input_size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return FeatureModel(
        network,
        default_mean if mean is None else mean,
        default_std if std is None else std,
        name=f"{name}@{file.name}",
        input_size=input_size,
        labels=labels,
        channels_last=True,
        weights_file=file,
    )
