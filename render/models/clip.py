"""CLIP through open_clip: the image tower as a :class:`FeatureModel`, the text tower for the
CLIP objectives (render/objectives/clip.py).

Weights come from a file (``path``), from open_clip's local caches for a pretrained tag, or from
the folder of a ``local-dir:`` model; never downloaded, and random only when asked for
(``pretrained=False``). open_clip is imported when a CLIP model is built, so the rest of
``render`` never loads it (it is the optional ``clip`` extra).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from render.errors import UserError
from render.models.feature import FeatureModel
from render.models.hub import close_matches, first_line, hf_cached_file, hf_where, url_where

log = logging.getLogger(__name__)

#: open_clip's schema for a model folder: open_clip_config.json and its weights.
LOCAL_DIR = "local-dir:"
#: The weight files of a model folder and of a Hugging Face repository, as open_clip names
#: them, the one it prefers first.
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _open_clip() -> Any:
    """The open_clip module, or a UserError saying how to install it."""
    try:
        import open_clip
    except ImportError:
        raise UserError(
            "model=clip needs open_clip: pip install 'tiledream[clip]' (or open_clip_torch)"
        ) from None
    return open_clip


class AnySizeImageTower(nn.Module):
    """open_clip's image tower taking images of any size.

    A ViT's position embedding is made for one patch grid; for another it is resampled
    (bicubic, as timm's ``dynamic_img_size`` does), so tiles reach the model at the size the
    robustness transforms leave and its token grids follow the image. Other towers run as they
    are (a tower that takes one size says so through :class:`FeatureModel`).
    """

    def __init__(self, visual: nn.Module) -> None:
        """Wrap ``visual``, open_clip's ``model.visual``; its modules keep open_clip's names
        under ``visual.``."""
        super().__init__()
        self.visual = visual
        grid = getattr(visual, "grid_size", None)
        has_position = isinstance(getattr(visual, "positional_embedding", None), Tensor)
        #: The patch grid the ViT's position embedding is made for; None for other towers.
        self.grid: tuple[int, int] | None = tuple(grid) if grid and has_position else None
        self.patch: tuple[int, int] = tuple(getattr(visual, "patch_size", (1, 1)))
        # The class token of open_clip's ViT; a timm tower says its own.
        trunk = getattr(visual, "trunk", None)
        self.num_prefix_tokens = (
            1 if self.grid is not None else int(getattr(trunk, "num_prefix_tokens", 0) or 0)
        )

    def forward(self, images: Tensor) -> Tensor:
        """The image embeddings ``[n, D]`` of normalised images ``[n, 3, H, W]``."""
        size = (images.shape[-2] // self.patch[0], images.shape[-1] // self.patch[1])
        if self.grid is None or size == self.grid:
            return self.visual(images)
        position = resample_abs_pos_embed(
            self.visual.get_parameter("positional_embedding")[None],
            list(size),
            list(self.grid),
            num_prefix_tokens=1,
        )[0]
        # The resampled embedding stands in for the parameter during this call only.
        return torch.func.functional_call(
            self.visual, {"positional_embedding": position}, (images,)
        )


class TextTower:
    """open_clip's tokenizer and text encoder: a prompt's embedding.

    A plain object, not a module: the text tower runs once per objective, before a render, and
    so stays on the CPU when the render moves the image tower to the accelerator.
    """

    def __init__(self, clip: Any, tokenizer: Any) -> None:
        """``clip``: the open_clip model; ``tokenizer``: ``open_clip.get_tokenizer``'s."""
        self.clip = clip
        self.tokenizer = tokenizer

    def embed(self, prompt: str) -> Tensor:
        """The embedding ``[D]`` of ``prompt``."""
        with torch.no_grad():
            return self.clip.encode_text(self.tokenizer([prompt]))[0].float()


class ClipModel(FeatureModel):
    """A CLIP model: its image tower is the network (``logits`` are the image embeddings, the
    layers open_clip's under ``visual.``); it embeds prompts and pictures for the objectives."""

    def __init__(self, clip: Any, tokenizer: Any, *, name: str, weights_file: str | None):
        """Wrap ``clip``, an open_clip model, normalising images as its preprocessing does."""
        open_clip = _open_clip()
        preprocess = open_clip.get_model_preprocess_cfg(clip)
        size = preprocess.get("size", 224)
        super().__init__(
            AnySizeImageTower(clip.visual),
            preprocess.get("mean", open_clip.OPENAI_DATASET_MEAN),
            preprocess.get("std", open_clip.OPENAI_DATASET_STD),
            name=name,
            input_size=size if isinstance(size, int) else size[0],
            weights_file=weights_file,
        )
        clip.requires_grad_(False).eval()
        self.text = TextTower(clip, tokenizer)

    def embed_text(self, prompt: str) -> Tensor:
        """The embedding ``[D]`` of a prompt, on the CPU."""
        return self.text.embed(prompt)

    def embed_image(self, image: Tensor) -> Tensor:
        """The embedding ``[D]`` of an RGB image ``[3, H, W]`` in [0, 1], seen as CLIP's
        preprocessing shows it (its shorter side resized to the input size, the centre cropped)."""
        size = self.input_size
        image = TF.resize(image, size, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        image = TF.center_crop(image, [size, size]).clamp(0, 1)
        with torch.no_grad():
            return self(image[None].to(self.mean.device))[0].float().cpu()


def _tag_weights(open_clip: Any, name: str, tag: str) -> tuple[str, dict[str, Any]]:
    """The cached weight file of open_clip's pretrained ``tag`` for architecture ``name``, and
    the tag's config; a UserError naming where it looked and how to get the file when absent."""
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag not in tags:
        valid = ", ".join(tags) or "none: pass model.path"
        raise UserError(
            f"CLIP model {name!r} has no pretrained weights tagged {tag!r}; valid: {valid}"
        )
    cfg = open_clip.get_pretrained_cfg(name, tag)
    # open_clip's reading of a tag's Hugging Face entry: "org/repo/" or "org/repo/file".
    repo, filename = os.path.split(cfg.get("hf_hub", ""))
    filename = filename or WEIGHT_FILES[1]
    stem, suffix = os.path.splitext(filename)
    # Where a repository has them, open_clip loads the safetensors weights first.
    safe = WEIGHT_FILES[0] if filename == WEIGHT_FILES[1] else f"{stem}.safetensors"
    found = None
    if repo:
        found = hf_cached_file(repo, [safe, filename] if suffix in (".bin", ".pth") else [filename])
    url = cfg.get("url", "")
    # open_clip's own cache for the weights it downloads from a url.
    candidate = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
    if found is None and url and os.path.isfile(candidate):
        found = candidate
    if found is None:
        looked = [f"{repo} in the Hugging Face cache"] if repo else []
        looked += [candidate] if url else []
        where = (
            hf_where(repo, filename)
            if repo
            else url_where(url, os.path.basename(url), os.path.dirname(candidate))
        )
        raise UserError(
            f"CLIP model {name!r} needs its {tag!r} weights: not in {' or '.join(looked)} "
            f"(model=clip never downloads); {where}, or pass model.path=/path/to/weights"
        )
    return found, cfg


def _folder_weights(folder: str) -> str:
    """The weight file of an open_clip model folder (``local-dir:FOLDER``), as open_clip names
    it; a UserError when the folder has none."""
    for filename in WEIGHT_FILES:
        path = Path(folder).expanduser() / filename
        if path.is_file():
            return str(path)
    raise UserError(
        f"CLIP model folder {folder} holds no weights ({' or '.join(WEIGHT_FILES)}): put them "
        f"there, or pass model.path=/path/to/weights"
    )


def clip_model(
    name: str = "ViT-B-32", pretrained: str | bool = "openai", path: str | None = None
) -> ClipModel:
    """An open_clip model: ``name`` is an architecture (``ViT-B-32``, ``ViT-L-14``, ... as
    ``open_clip.list_models()``) or ``local-dir:FOLDER`` (a folder with open_clip_config.json).

    Its weights come from ``path`` when given; else ``pretrained`` names open_clip's pretrained
    weights by tag (``openai``, ``laion2b_s34b_b79k``, ...), read from the local cache, or a
    ``local-dir:`` folder's own file is read; never downloaded: a UserError says where to put
    them.
    ``pretrained=False`` (and no ``path``): random weights, for tests.
    """
    open_clip = _open_clip()
    folder = name[len(LOCAL_DIR) :] if name.startswith(LOCAL_DIR) else None
    if folder is not None:
        if not (Path(folder).expanduser() / "open_clip_config.json").is_file():
            raise UserError(
                f"model.name {name!r}: {folder} is not an open_clip model folder (it needs an "
                f"open_clip_config.json)"
            )
    elif name not in open_clip.list_models():
        hint = close_matches(name, open_clip.list_models()) or "see open_clip.list_models()"
        raise UserError(f"unknown CLIP architecture {name!r}; {hint}")
    quick_gelu = False
    normalisation: tuple[tuple[str, tuple[float, ...]], ...] = ()
    weights: str | None
    if path is not None:
        if not Path(path).expanduser().is_file():
            raise UserError(f"model.path {path!r} is not a file; give a CLIP weights file")
        weights = str(Path(path).expanduser())
    elif pretrained is False:
        weights = None
    elif pretrained is True or not isinstance(pretrained, str):
        raise UserError(
            f"model.pretrained must name open_clip's pretrained weights (a tag such as "
            f"'openai') or be false (random weights), got {pretrained!r}"
        )
    elif folder is not None:
        weights = _folder_weights(folder)
    else:
        weights, cfg = _tag_weights(open_clip, name, pretrained)
        # The architecture and preprocessing the weights were trained with.
        quick_gelu = bool(cfg.get("quick_gelu", False))
        normalisation = tuple((key, tuple(cfg[key])) for key in ("mean", "std") if key in cfg)
    stamp = None if weights is None else os.stat(weights).st_mtime_ns
    return _load(name, weights, stamp, quick_gelu, normalisation)


class _FromOpenClip(logging.Filter):
    """Drops the records open_clip logs (on the root logger) while it builds an architecture."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}open_clip{os.sep}" not in record.pathname


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without open_clip's log: it tells how it reads a config (at INFO) and says "no pretrained
    weights loaded ... initialized randomly" of an architecture whose weights load after it."""
    root, drop = logging.getLogger(), _FromOpenClip()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


# Memoised: a CLIP objective builds the render's model again (its config's ``${model}``) to
# embed its prompt, and gets the same one. A weight file is known by its path and time stamp.
@functools.lru_cache(maxsize=2)
def _load(
    name: str,
    weights: str | None,
    stamp: int | None,
    quick_gelu: bool,
    normalisation: tuple[tuple[str, tuple[float, ...]], ...],
) -> ClipModel:
    open_clip = _open_clip()
    kwargs = {
        "load_weights": False,
        "force_quick_gelu": quick_gelu,
        "force_preprocess_cfg": dict(normalisation),
        # No tower's own pretrained weights either (they would be downloaded).
        "pretrained_image": False,
        "pretrained_text": False,
    }
    if weights is None:
        log.warning("model %s: random weights (model.pretrained=false)", name)
        # Random weights that do not depend on (or change) the render's random stream.
        with torch.random.fork_rng(devices=[]), _quiet():
            torch.manual_seed(0)
            clip = open_clip.create_model(name, **kwargs)
    else:
        with _quiet():
            clip = open_clip.create_model(name, **kwargs)
        try:
            open_clip.load_checkpoint(clip, weights)
        # Reading an arbitrary file can fail in many ways (pickle, safetensors, keys, shapes);
        # for the user each means the same thing: this file is not these weights.
        except Exception as error:
            raise UserError(
                f"{weights} does not load into CLIP model {name!r}: {first_line(error)}"
            ) from None
    with _quiet():
        tokenizer = open_clip.get_tokenizer(name)
    label = f"{name}@{Path(weights).name}" if weights else f"{name} (random weights)"
    return ClipModel(clip, tokenizer, name=label, weights_file=weights)
