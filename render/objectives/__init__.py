"""Feature-visualisation objectives: differentiable scores to maximise, composable by arithmetic.

Every factory here is Hydra-instantiable, e.g. ``_target_: render.objectives.channel``.
"""

from render.objectives.accentuate import accentuate, keep_photo
from render.objectives.activations import (
    channel,
    class_logit,
    deepdream,
    direction,
    diversity,
    neuron,
)
from render.objectives.base import Masked, Objective, WeightedSum
from render.objectives.clip import clip_image, clip_text
from render.objectives.config import weighted_sum
from render.objectives.layouts import atlas, atlas_from_config, interpolate
from render.objectives.mask import mask
from render.objectives.penalties import l1, l2, total_variation
from render.objectives.spatial import Box, ImageMap, WeightMap

__all__ = [
    "Box",
    "ImageMap",
    "Masked",
    "Objective",
    "WeightMap",
    "WeightedSum",
    "accentuate",
    "atlas",
    "atlas_from_config",
    "channel",
    "class_logit",
    "clip_image",
    "clip_text",
    "deepdream",
    "direction",
    "diversity",
    "interpolate",
    "keep_photo",
    "l1",
    "l2",
    "mask",
    "neuron",
    "total_variation",
    "weighted_sum",
]
