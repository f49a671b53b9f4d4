"""Structured config schemas, registered in Hydra's ConfigStore.

The YAML options under ``configs/`` extend these schemas, so a misspelt key or a value of the
wrong type fails at composition time with Hydra's own message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, open_dict
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from render.errors import UserError
from render.rules import MAX_SEED, Number, rule, validate

# The rules every number of a render keeps (render/rules.py checks them before a render starts).
COUNT = Number(integer=True, at_least=1)
NON_NEGATIVE_INT = Number(integer=True, at_least=0)
FINITE = Number()
NON_NEGATIVE = Number(at_least=0)
POSITIVE = Number(above=0)
#: render.tiles_per_step: a count, or measured from the device (render/batching.py).
TILES_PER_STEP = Number(integer=True, at_least=1, words=("auto",))


@dataclass
class TilingConfig:
    """Canvas geometry, passed to ``tiling.TilingModule``."""

    tile_size: list[int] = rule(COUNT, default_factory=lambda: [224, 224])
    # Floats are fractions of a tile, ints are pixels (TilingModule's rule).
    tile_overlap: list[Union[int, float]] = rule(  # noqa: UP007
        NON_NEGATIVE, default_factory=lambda: [0.25, 0.25]
    )
    # None takes the size of ``init.path`` (init=image sets it so, unless given).
    base_size: list[int] | None = rule(COUNT, default_factory=lambda: [448, 448])
    placement: str = "grid"
    window: str = "linear"


@dataclass
class RenderSettings:
    """How the tiles are optimised."""

    # A number, or "auto": measured from the device's free memory (render/batching.py).
    # None (the default): auto on CUDA, batching.CPU_TILES_PER_STEP on the CPU. OmegaConf
    # needs typing.Union.
    tiles_per_step: Union[int, str] | None = rule(TILES_PER_STEP, None)  # noqa: UP007
    # Updates of every tile between blends of the overlaps (passes over the canvas; 0: never).
    blend_every: int = rule(Number(integer=True, at_least=0, note="0: never"), 3)
    # Optimiser updates of every tile in each octave; trainer.max_steps, when set, wins.
    updates_per_tile: float = rule(POSITIVE, 50.0)
    # Each octave after the first runs this share of the updates per tile of the one before:
    # below 1, the coarse octaves set the composition and the fine ones add detail to it.
    update_decay: float = rule(Number(above=0, at_most=1, note="1: the same in every octave"), 1.0)
    # Each octave after the first of a pyramid from noise also scores every tile in its context
    # view: its neighbourhood at the first octave's scale, which keeps that octave's
    # composition (render/context.py).
    context: bool = True
    # Where each context view's thumbnail lies between the first octave's size (0) and the
    # octave's own (1), on a log scale; with several, a tile's updates take them in turn (each
    # update still scores two images). [0, 0.33]: every other view shows the neighbourhood at
    # about a quarter of the canvas, a scale neither octave 1's view nor the tile covers.
    context_scales: list[float] = rule(Number(at_least=0, at_most=1), default_factory=lambda: [0.0])
    # None: a pyramid from about one tile for renders from noise (scale <= 2), one octave of
    # DeepDream's 1.4 for a photo. Values given win (render/plan.py).
    octaves: int | None = rule(COUNT, None)
    octave_scale: float | None = rule(Number(above=1), None)
    # Start each octave from the photo at its size plus the detail added so far, upsampled
    # (the classic DeepDream loop), instead of the upsampled canvas. init=image only.
    carry_detail: bool = False
    # An upsampled canvas is mapped into [h, 1 - h] before it is encoded for the next octave,
    # so that no pixel starts saturated (where the sigmoid passes no gradient).
    octave_headroom: float = rule(Number(at_least=0, below=0.5), 0.0)
    offload: bool = False
    # How idle tiles' optimiser state is stored: bfloat16 (a third less memory) or float32.
    state_dtype: str = "bfloat16"
    gif_max_size: int = rule(COUNT, 512)
    border: int = rule(NON_NEGATIVE_INT, 2)
    decode_chunk: int = rule(COUNT, 8)


@dataclass
class CheckpointConfig:
    """Lightning checkpoints in ``<run dir>/checkpoints``; 0 turns them off."""

    every_n_steps: int = rule(Number(integer=True, at_least=0, note="0: no checkpoints"), 0)
    # The newest checkpoints kept per octave: an older one is there when the newest is damaged.
    keep: int = rule(COUNT, 2)


@dataclass
class OutputConfig:
    """Which picture files a render writes (render/pictures.py), by the canvas's pixel count."""

    # render.png and render_tiles.png only up to this many pixels (browsers refuse larger PNGs).
    png_max_pixels: int = rule(COUNT, 8192 * 8192)
    # render.dzi + render_files/ + viewer.html; None: on above large_pixels.
    deepzoom: bool | None = None
    # render.tif, a tiled pyramidal BigTIFF for printing; None: on above large_pixels.
    tiff: bool | None = None
    large_pixels: int = rule(COUNT, 4096 * 4096)


@dataclass
class RenderConfig:
    """The whole render: ``python scripts/render.py key=value ...``."""

    model: Any = MISSING
    objective: Any = MISSING
    param: Any = MISSING
    transforms: Any = MISSING
    init: Any = MISSING
    optim: Any = MISSING
    tiling: TilingConfig = field(default_factory=TilingConfig)
    render: RenderSettings = field(default_factory=RenderSettings)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    # Passed as keyword arguments to ``lightning.pytorch.Trainer``.
    trainer: dict[str, Any] = field(default_factory=dict)
    seed: int = rule(Number(integer=True, at_least=0, at_most=MAX_SEED), 0)
    resume: bool = False


# --- models --------------------------------------------------------------------------------


@dataclass
class EmbeddedModel:
    _target_: str = "render.models.efficientnet_lite0"


@dataclass
class InceptionV1Model:
    _target_: str = "render.models.inceptionv1"
    # Default: <torch hub dir>/checkpoints/inception5h.pth, where Lucent's download puts it.
    path: str | None = None


@dataclass
class TorchvisionModel:
    _target_: str = "render.models.torchvision_model"
    name: str = MISSING
    weights: str = "DEFAULT"


@dataclass
class TimmModel:
    _target_: str = "render.models.timm_model"
    name: str = MISSING


@dataclass
class CheckpointModel:
    _target_: str = "render.models.checkpoint_model"
    path: str = MISSING
    arch: str = MISSING


# --- objectives ----------------------------------------------------------------------------


@dataclass
class ChannelObjective:
    _target_: str = "render.objectives.channel"
    layer: str = MISSING
    channel: int = rule(NON_NEGATIVE_INT, 0)


@dataclass
class NeuronObjective:
    _target_: str = "render.objectives.neuron"
    layer: str = MISSING
    channel: int = rule(NON_NEGATIVE_INT, 0)
    x: int | None = rule(NON_NEGATIVE_INT, None)
    y: int | None = rule(NON_NEGATIVE_INT, None)


@dataclass
class DeepDreamObjective:
    _target_: str = "render.objectives.deepdream"
    layer: str = MISSING


@dataclass
class ClassLogitObjective:
    _target_: str = "render.objectives.class_logit"
    class_index: int = rule(NON_NEGATIVE_INT, MISSING)


@dataclass
class DirectionObjective:
    _target_: str = "render.objectives.direction"
    layer: str = MISSING
    vector: list[float] = rule(FINITE, MISSING)


@dataclass
class WeightedSumObjective:
    _target_: str = "render.objectives.weighted_sum"
    # Each term: {objective: {_target_: ..., ...}, weight: float}.
    terms: list[Any] = MISSING


@dataclass
class InterpolateObjective:
    _target_: str = "render.objectives.interpolate"
    # Objective options (objective@objective.start=channel): `start` rules the left (top) edge.
    start: Any = MISSING
    end: Any = MISSING
    axis: str = "x"
    # The share of the canvas, in its middle, over which the weights cross-fade (1: edge to edge).
    transition: float = rule(Number(at_least=0, at_most=1, note="a share of the canvas"), 0.5)


@dataclass
class AtlasObjective:
    _target_: str = "render.objectives.atlas_from_config"
    layer: str | None = None
    # A list of indices or "range(a, b)"; exactly one of channels, classes, cells.
    channels: Any = None
    classes: Any = None
    cells: Any = None
    grid: list[int] | None = rule(COUNT, None)
    blend: float = rule(Number(at_least=0, at_most=1, note="a share of a cell"), 0.5)


@dataclass
class MaskObjective:
    _target_: str = "render.objectives.mask"
    path: str = MISSING
    # Colour ('#rrggbb' or a name) -> objective config.
    regions: Any = MISSING


# --- parameterisations, transforms, initial image, optimiser -------------------------------


@dataclass
class FourierParamConfig:
    _target_: str = "render.params.FourierParam"
    decay: float = rule(FINITE, 1.0)
    init_std: float = rule(NON_NEGATIVE, 0.01)
    decorrelate: bool = True


@dataclass
class PixelParamConfig:
    _target_: str = "render.params.PixelParam"
    init_std: float = rule(NON_NEGATIVE, 0.01)
    decorrelate: bool = True


@dataclass
class StandardTransformsConfig:
    _target_: str = "render.transforms.RobustnessTransforms"
    pad: int = rule(NON_NEGATIVE_INT, 12)
    # A pixel value.
    pad_value: float = rule(Number(at_least=0, at_most=1), 0.5)
    jitter: int = rule(NON_NEGATIVE_INT, 8)
    scales: list[float] | None = rule(POSITIVE, None)
    angles: list[float] | None = rule(FINITE, None)
    final_jitter: int = rule(NON_NEGATIVE_INT, 4)


@dataclass
class NoTransformsConfig:
    _target_: str = "render.transforms.NoTransforms"


@dataclass
class NoiseInit:
    _target_: str = "render.initial.NoiseInit"


@dataclass
class ImageInit:
    _target_: str = "render.initial.ImageInit"
    path: str = MISSING


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = rule(POSITIVE, 0.05)
    betas: list[float] = rule(Number(at_least=0, below=1), default_factory=lambda: [0.9, 0.999])
    eps: float = rule(NON_NEGATIVE, 1e-8)
    # One kernel per step instead of a dozen: several times faster on CPU and GPU.
    fused: bool = True


@dataclass
class NormalizedSGDConfig:
    _target_: str = "render.optim.NormalizedSGD"
    _partial_: bool = True
    # Mean step per parameter (a tile's gradient is divided by its mean magnitude).
    lr: float = rule(POSITIVE, 0.02)
    # Keeps a tile with a zero gradient finite.
    eps: float = rule(POSITIVE, 1e-8)


SCHEMAS: dict[str, dict[str, type]] = {
    "model": {
        "efficientnet_lite0": EmbeddedModel,
        "inceptionv1": InceptionV1Model,
        "torchvision": TorchvisionModel,
        "timm": TimmModel,
        "checkpoint": CheckpointModel,
    },
    "objective": {
        "channel": ChannelObjective,
        "neuron": NeuronObjective,
        "deepdream": DeepDreamObjective,
        "class_logit": ClassLogitObjective,
        "direction": DirectionObjective,
        "sum": WeightedSumObjective,
        "interpolate": InterpolateObjective,
        "atlas": AtlasObjective,
        "mask": MaskObjective,
    },
    "param": {"fft": FourierParamConfig, "pixel": PixelParamConfig},
    "transforms": {"standard": StandardTransformsConfig, "none": NoTransformsConfig},
    "init": {"noise": NoiseInit, "image": ImageInit},
    "optim": {"adam": AdamConfig, "normalized": NormalizedSGDConfig},
}


#: Keys of ``trainer`` (keyword arguments, not a schema) that the render reads itself.
TRAINER_RULES = {
    "trainer.max_steps": Number(
        integer=True, at_least=0, note="or null: planned from render.updates_per_tile"
    ),
}


def check_values(cfg: DictConfig) -> None:
    """Raise UserError for the first number of ``cfg`` that breaks its rule (see render.rules)."""
    validate(cfg, TRAINER_RULES)


def register_configs() -> None:
    """Register the schemas: ``render_schema`` and ``<group>/<name>_schema`` for each option."""
    store = ConfigStore.instance()
    store.store(name="render_schema", node=RenderConfig)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            store.store(group=group, name=f"{name}_schema", node=node)


def config_dir() -> str:
    """The folder of ``render.yaml``: the wheel's copy inside the package, else the checkout's."""
    package = Path(__file__).resolve().parent
    installed = package / "configs"
    return str(installed if installed.is_dir() else package.parent / "configs")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The render config of ``python scripts/render.py OVERRIDES...``, as a DictConfig."""
    return compose_with_choices(overrides)[0]


def compose_with_choices(overrides: Sequence[str] = ()) -> tuple[DictConfig, dict[str, str]]:
    """:func:`compose_config` and the option each config group took (``{"model": "timm"}``;
    Hydra's ``runtime.choices`` without Hydra's own groups and the unset ones)."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("render", overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(f"overrides {list(overrides)}: {error}") from None
    choices = group_choices(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def group_choices(choices: Mapping[str, Any]) -> dict[str, str]:
    """The options of the render's own config groups among Hydra's ``runtime.choices``."""
    return {
        str(group): str(option)
        for group, option in choices.items()
        if option is not None and not str(group).startswith("hydra/")
    }


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that lets a UserError (or a bad argument) surface as such.

    Hydra wraps whatever the target raises; a user's mistake should read as one line.
    """
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except MissingMandatoryValue as error:
        key = error.full_key
        raise UserError(f"{key} has no value (???); set it: {key}=...") from None
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, TypeError):
            raise UserError(f"{node.get('_target_')}: {cause}") from None
        raise
