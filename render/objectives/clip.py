"""``clip_text`` and ``clip_image``: the cosine between CLIP's embedding of what a tile shows and
the embedding of a prompt or of a picture (``model=clip``, render/models/clip.py).

The target's embedding is taken once, when the objective is built, by the render's CLIP model
(the objective's config names it as ``${model}``); the objective keeps only that vector. A
score is one number per image the model sees, so over the canvas it is weighted per tile, like
a class logit: ``interpolate``, ``atlas``, ``mask`` and ``where`` lay prompts out over a picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from PIL import UnidentifiedImageError
from torch import Tensor

from render.errors import UserError
from render.objectives.activations import LOGITS
from render.objectives.base import Objective
from render.objectives.checks import check_layer, fetch

if TYPE_CHECKING:
    from render.models.clip import ClipModel

__all__ = ["ClipSimilarity", "clip_image", "clip_text"]


class ClipSimilarity(Objective):
    """The cosine between the image embeddings (``logits`` of a CLIP model) and ``target``."""

    __slots__ = ("label", "target")
    target: tuple[float, ...]
    label: str

    def __init__(self, target: Sequence[float] | Tensor, label: str) -> None:
        """``target``: the embedding to draw to; ``label``: what it embeds, for reprs."""
        if isinstance(target, Tensor):
            target = target.detach().float().cpu().flatten().tolist()
        self._set("target", tuple(float(v) for v in target))
        self._set("label", str(label))

    def _args(self) -> tuple[Any, ...]:
        return (self.target, self.label)

    @property
    def layers(self) -> frozenset[str]:
        """Just ``"logits"``: a CLIP model's image embeddings."""
        return frozenset((LOGITS,))

    def validate(self, channels: Mapping[str, int]) -> None:
        """Raise UserError unless the model's embeddings have the target's length."""
        count = check_layer(LOGITS, channels, repr(self))
        if count != len(self.target):
            raise UserError(
                f"{self!r} compares embeddings of {len(self.target)} numbers, but the model's "
                f"output has {count}: embed the target with the render's CLIP model"
            )

    def per_position(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """The cosine of each image's embedding with the target: one score per image."""
        embeddings = fetch(activations, LOGITS, repr(self)).float()
        # Copied without waiting for the device: the render step must not sync.
        target = torch.tensor(self.target).to(embeddings.device, non_blocking=True)
        return F.cosine_similarity(embeddings, target[None], dim=1)

    def __call__(self, activations: Mapping[str, Tensor], images: Tensor) -> Tensor:
        """Return the mean cosine over the batch."""
        return self.per_position(activations, images).mean()

    def __repr__(self) -> str:
        return self.label


def _clip(model: object, owner: str) -> ClipModel:
    """``model`` if it is a CLIP model, else a UserError saying which model the objective needs."""
    # Imported here: render.models imports render.objectives (the layer checks).
    from render.models.clip import ClipModel

    if not isinstance(model, ClipModel):
        name = getattr(model, "name", type(model).__name__)
        raise UserError(
            f"{owner} needs a CLIP model (model=clip) to embed its target, got {name!r}"
        )
    return model


def clip_text(prompt: str, model: object) -> Objective:
    """The cosine between what each tile shows and ``prompt``, both embedded by ``model`` (a
    :class:`render.models.ClipModel`, the render's)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError(f"clip_text: prompt must be a non-empty string, got {prompt!r}")
    embedding = _clip(model, "clip_text").embed_text(prompt)
    return ClipSimilarity(embedding, f"clip_text({prompt!r})")


def clip_image(path: str, model: object) -> Objective:
    """The cosine between what each tile shows and the picture at ``path``, both embedded by
    ``model`` (the picture as CLIP's preprocessing shows it: its centre square)."""
    clip = _clip(model, "clip_image")
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"clip_image: path {str(path)!r} is not a file; give a picture")
    # Imported here: render.quality imports render.models, which imports render.objectives.
    from render.quality import load_picture

    try:
        image = load_picture(file)[0]
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(
            f"clip_image: {str(path)!r} cannot be read as a picture ({error})"
        ) from None
    return ClipSimilarity(clip.embed_image(image), f"clip_image({file.name!r})")
