"""Feature-visualisation objectives: differentiable scores to maximise, composable by arithmetic.

Every factory here is Hydra-instantiable, e.g. ``_target_: render.objectives.channel``.
"""

from render.objectives.activations import (
    channel,
    class_logit,
    deepdream,
    direction,
    diversity,
    neuron,
)
from render.objectives.base import Objective, WeightedSum
from render.objectives.config import weighted_sum
from render.objectives.penalties import l1, l2, total_variation

__all__ = [
    "Objective",
    "WeightedSum",
    "channel",
    "class_logit",
    "deepdream",
    "direction",
    "diversity",
    "l1",
    "l2",
    "neuron",
    "total_variation",
    "weighted_sum",
]
