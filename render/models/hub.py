"""Pretrained torchvision and timm classifiers, from the local cache or a download."""

from __future__ import annotations

import difflib
import os
import pickle
import socket
from collections.abc import Iterable
from http.client import HTTPException
from typing import Any
from urllib.parse import urlparse

import timm
import torch
import torchvision
from safetensors import SafetensorError
from timm.data import ImageNetInfo, infer_imagenet_subset
from timm.models import get_pretrained_cfg
from torch import nn
from torchvision.models import WeightsEnum

from render.errors import UserError
from render.models.feature import IMAGENET_MEAN, IMAGENET_STD, FeatureModel

EMBEDDED = "efficientnet_lite0"
TIMM_PREFIX = "timm:"
TORCHVISION_PREFIX = "torchvision:"

Stats = tuple[tuple[float, ...], tuple[float, ...]]

# What a failed download raises: URLError, socket errors and Hugging Face's HTTP and
# "not in cache" errors are all OSError subclasses; http.client adds a few of its own.
_DOWNLOAD_ERRORS = (OSError, HTTPException)
# What reading a damaged weights file raises.
_READ_ERRORS = (OSError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError)


def close_matches(name: str, candidates: Iterable[str]) -> str:
    """A 'close matches: ...' phrase for an error message, or '' if nothing is close."""
    # dict.fromkeys: de-duplicate (torchvision and timm share names) keeping order.
    found = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=5, cutoff=0.6)
    return f"close matches: {', '.join(found)}" if found else ""


def first_line(exc: BaseException) -> str:
    """The first line of an exception, for a one-line error message."""
    text = str(exc).strip().splitlines()
    return (text[0][:160] if text else "") or type(exc).__name__


def torchvision_names() -> list[str]:
    """Names of torchvision's ImageNet classifiers."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def resolve_arch(spec: str) -> tuple[str, str]:
    """Split a model spec into (source, name); source is "embedded", "torchvision" or "timm".

    Bare names are looked up in torchvision first (so "resnet50" is torchvision's), then
    timm; prefix "timm:" or "torchvision:" to choose.
    """
    spec = str(spec).strip()
    if spec == EMBEDDED:
        return "embedded", EMBEDDED
    if spec.startswith(TIMM_PREFIX):
        return "timm", _timm_name(spec[len(TIMM_PREFIX) :])
    if spec.startswith(TORCHVISION_PREFIX):
        return "torchvision", _torchvision_name(spec[len(TORCHVISION_PREFIX) :])
    tv_names = torchvision_names()
    if spec.lower() in tv_names:
        return "torchvision", spec.lower()
    if timm.is_model(spec):
        return "timm", spec
    hint = close_matches(spec, [EMBEDDED, *tv_names, *timm.list_models()])
    raise UserError(
        f"unknown model {spec!r}; use {EMBEDDED!r}, a torchvision classifier name "
        f"(e.g. googlenet, vgg16, resnet50) or 'timm:<name>'" + (f"; {hint}" if hint else "")
    )


def _torchvision_name(name: str) -> str:
    names = torchvision_names()
    if name.lower() in names:
        return name.lower()
    hint = close_matches(name.lower(), names) or "see torchvision.models.list_models()"
    raise UserError(f"unknown torchvision classifier {name!r}; {hint}")


def _timm_name(name: str) -> str:
    arch, _, tag = name.partition(".")
    if tag and timm.is_model(arch):
        # A tagged name ("arch.tag") must name one of the arch's pretrained weights.
        tagged = timm.list_pretrained(f"{arch}.*")
        if name in tagged:
            return name
        raise UserError(
            f"unknown weights tag {tag!r} for timm model {arch!r}; valid: {', '.join(tagged)}"
        )
    if timm.is_model(name):
        return name
    hint = close_matches(name, timm.list_models()) or "see timm.list_models()"
    raise UserError(f"unknown timm model {name!r}; {hint}")


def _pick_weights(name: str, weights: str) -> WeightsEnum:
    """Resolve "DEFAULT", a member name or "Enum.MEMBER" to torchvision weights."""
    enum = torchvision.models.get_model_weights(name)
    member = str(weights).split(".")[-1]
    if member in enum.__members__:
        return enum[member]
    valid = ", ".join(enum.__members__)
    raise UserError(f"unknown weights {weights!r} for torchvision model {name!r}; valid: {valid}")


def torchvision_normalisation(network: nn.Module, weights: WeightsEnum | None) -> Stats:
    """Mean and std that torchvision's pretrained weights expect, with transform_input off.

    Pretrained GoogLeNet and Inception-v3 are built with transform_input=True, which maps
    ImageNet-normalised input to (x - 0.5) / 0.5 inside forward(). Switch it off and
    normalise to (x - 0.5) / 0.5 ourselves: the same input reaches the first conv, and
    FeatureModel's normalisation is then the only one applied.
    """
    flag = getattr(network, "transform_input", None)
    if flag is not None:
        if isinstance(network, torch.jit.ScriptModule):
            # Compiled code cannot be changed: feed what the module expects.
            return (IMAGENET_MEAN, IMAGENET_STD) if flag else ((0.5,) * 3, (0.5,) * 3)
        # torch types Module.__setattr__'s value as Tensor | Module; a flag is fine.
        network.transform_input = False  # type: ignore[assignment]
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    if weights is None:
        return IMAGENET_MEAN, IMAGENET_STD
    transform = weights.transforms()
    return tuple(transform.mean), tuple(transform.std)


def default_torchvision_weights(name: str) -> WeightsEnum:
    """torchvision's DEFAULT weights for classifier `name`."""
    return torchvision.models.get_model_weights(name).DEFAULT


def torchvision_model(name: str, weights: str = "DEFAULT") -> FeatureModel:
    """A pretrained torchvision classifier (e.g. googlenet, vgg16, resnet50).

    Weights come from `<torch.hub.get_dir()>/checkpoints/` when there, else are downloaded;
    offline with no cached file, a UserError says which file to put where.
    """
    name = _torchvision_name(name)
    chosen = _pick_weights(name, weights)
    filename = os.path.basename(urlparse(chosen.url).path)
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    cached = os.path.join(folder, filename)
    was_cached = os.path.isfile(cached)
    expected = _READ_ERRORS if was_cached else _DOWNLOAD_ERRORS
    try:
        network = torchvision.models.get_model(name, weights=chosen)
    except expected as exc:
        if was_cached:
            raise UserError(
                f"cached weights {cached} for torchvision model {name!r} are unreadable "
                f"({first_line(exc)}); delete the file, or replace it with a copy of {chosen.url}"
            ) from exc
        raise UserError(
            f"weights {filename} for torchvision model {name!r} are not cached and could "
            f"not be downloaded ({first_line(exc)}); {url_where(chosen.url, filename, folder)}"
        ) from exc
    mean, std = torchvision_normalisation(network, chosen)
    crop = chosen.transforms().crop_size
    return FeatureModel(
        network,
        mean,
        std,
        name=name,
        input_size=int(crop[0]) if crop else 224,
        labels=chosen.meta.get("categories"),
        channels_last=True,
        # Where torchvision loaded the weights from (it downloads them there too).
        weights_file=cached,
    )


def timm_labels(network: nn.Module) -> tuple[str, ...] | None:
    """Class descriptions for a timm ImageNet classifier, if timm knows its label set."""
    subset = infer_imagenet_subset(network)
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    if info.num_classes() != getattr(network, "num_classes", None):
        return None
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


def timm_normalisation(network: nn.Module) -> Stats:
    """Mean and std from a timm model's pretrained config (ImageNet's if it has none)."""
    cfg = getattr(network, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


# The most flexible input handling each architecture takes, tried in turn: ViT-likes interpolate
# their position embedding and pad to whole patches, Swin builds its attention masks for each
# size; the rest (ConvNeXt, CNNs) take any size as they are, built without options. Tiles reach
# the model at the tile size plus the robustness transforms' margin (236 for 224 by default).
_ANY_SIZE: tuple[dict[str, Any], ...] = (
    {"dynamic_img_size": True, "dynamic_img_pad": True},
    {"dynamic_img_size": True},
)


def timm_network(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, **kwargs)``, built to take any input size where it can."""
    for options in _ANY_SIZE:
        try:
            return timm.create_model(name, **options, **kwargs)
        except TypeError as exc:
            # Only an architecture that lacks these options retries; other errors are real.
            if not any(option in str(exc) for option in options):
                raise
    return timm.create_model(name, **kwargs)


def _timm_feature_model(network: nn.Module, name: str, weights_file: str | None) -> FeatureModel:
    mean, std = timm_normalisation(network)
    size = (getattr(network, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))
    return FeatureModel(
        network,
        mean,
        std,
        name=name,
        input_size=int(size[-1]),
        labels=timm_labels(network),
        channels_last=True,
        weights_file=weights_file,
    )


def hf_cached_file(hub_id: str, filenames: Iterable[str]) -> str | None:
    """The first of ``filenames`` of the Hugging Face repository ``hub_id`` (``repo`` or
    ``repo@revision``) in the local Hugging Face cache, without the network; None if none is."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = hub_id.partition("@")
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(found, str):
            return found
    return None


def hf_where(hub_id: str, filename: str) -> str:
    """Where a missing file of Hugging Face repository ``hub_id`` goes and how to get it, for an
    error message."""
    from huggingface_hub import constants

    repo = hub_id.partition("@")[0]
    return (
        f"put {filename} of https://huggingface.co/{repo} in the Hugging Face cache "
        f"{constants.HF_HUB_CACHE} (run `hf download {repo}` where there is network and "
        f"copy its models--{repo.replace('/', '--')} folder there)"
    )


def url_where(url: str, filename: str, folder: str) -> str:
    """Where a missing file downloaded from ``url`` goes, for an error message."""
    return f"place {filename} in {folder} (download it from {url})"


def _timm_cached_file(name: str) -> str | None:
    """Path of `name`'s pretrained weights in the local Hugging Face or torch hub cache."""
    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        found = hf_cached_file(
            cfg.hf_hub_id, [cfg.hf_hub_filename] if cfg.hf_hub_filename else _HF_FILES
        )
        if found is not None:
            return found
    if cfg.url:
        _, filename = _timm_url_file(cfg.url)
        path = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
        if os.path.isfile(path):
            return path
    return None


_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def _timm_url_file(url: str | tuple[str, str]) -> tuple[str, str]:
    """A timm weights url and the file name it is cached under (a pair gives it: timm's form)."""
    if isinstance(url, tuple):
        return url
    return url, os.path.basename(url)


def _timm_offline(cfg: Any) -> str:
    """Why the host of a timm model's weights (``cfg``: its pretrained config) cannot be
    reached, or '' when it may be: Hugging Face's offline mode, or a host name that does not
    resolve."""
    from huggingface_hub import constants

    if cfg.hf_hub_id:
        if constants.HF_HUB_OFFLINE:
            return "HF_HUB_OFFLINE is set"
        host = urlparse(constants.ENDPOINT).hostname
    else:
        host = urlparse(_timm_url_file(cfg.url)[0]).hostname
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return f"{host} does not resolve: {first_line(exc)}"
    return ""


def _timm_missing_message(name: str, reason: str) -> str:
    cfg = get_pretrained_cfg(name)
    assert cfg is not None  # checked by the caller
    if cfg.hf_hub_id:
        where = hf_where(cfg.hf_hub_id, cfg.hf_hub_filename or _HF_FILES[0])
    else:
        assert cfg.url  # checked by the caller: no hf_hub_id, so a url
        url, filename = _timm_url_file(cfg.url)
        where = url_where(url, filename, os.path.join(torch.hub.get_dir(), "checkpoints"))
    return (
        f"pretrained weights for timm model {name!r} are not cached and could not be "
        f"downloaded ({reason}); {where}, or load a local file with checkpoint_model"
    )


def timm_model(name: str) -> FeatureModel:
    """A pretrained timm model, e.g. "convnext_tiny" or "resnet50.a1_in1k".

    Weights found in the local Hugging Face or torch hub cache load without the network.
    Otherwise timm downloads them; offline (``HF_HUB_OFFLINE=1``, or a host name that does
    not resolve) a UserError names the file and folder at once, before the network is built.
    """
    name = _timm_name(name)
    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        hint = close_matches(name, timm.list_pretrained()) or "see timm.list_pretrained()"
        raise UserError(f"timm model {name!r} has no pretrained weights; {hint}")
    cached = _timm_cached_file(name)
    if cached is not None:
        try:
            # Loading the found file directly never touches the network.
            network = timm_network(name, pretrained=True, pretrained_cfg_overlay={"file": cached})
        except _READ_ERRORS as exc:
            raise UserError(
                f"cached weights {cached} for timm model {name!r} are unreadable "
                f"({first_line(exc)}); delete the file so it can be fetched again"
            ) from exc
    else:
        offline = _timm_offline(cfg)
        if offline:
            # Before building the network, and instead of Hugging Face's minute of retries.
            raise UserError(_timm_missing_message(name, offline))
        try:
            network = timm_network(name, pretrained=True)
        except _DOWNLOAD_ERRORS as exc:
            raise UserError(_timm_missing_message(name, type(exc).__name__)) from exc
    # A download lands in the cache: the file the weights came from either way.
    return _timm_feature_model(network, name, cached or _timm_cached_file(name))
