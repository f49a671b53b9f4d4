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
    """Tile size ``[h, w]`` in pixels."""
    # TilingModule's rule: floats are fractions of a tile, ints are pixels.
    tile_overlap: list[Union[int, float]] = rule(  # noqa: UP007
        NON_NEGATIVE, default_factory=lambda: [0.25, 0.25]
    )
    """Overlap of neighbouring tiles ``[a, b]``: fractions of a tile (floats) or pixels (ints)."""
    base_size: list[int] | None = rule(COUNT, default_factory=lambda: [448, 448])
    """Canvas size ``[H, W]``; null takes the size of ``init.path`` (init=image sets it so)."""
    placement: str = "grid"
    """Where tiles start: ``grid`` (the reference's stride) or ``even`` (equal overlaps)."""
    window: str = "linear"
    """Shape of the blend across an overlap: ``linear`` or ``cosine`` ramps."""


@dataclass
class RenderSettings:
    """How the tiles are optimised."""

    # OmegaConf needs typing.Union.
    tiles_per_step: Union[int, str] | None = rule(TILES_PER_STEP, None)  # noqa: UP007
    """Tiles in one optimisation step: a number, ``auto`` (measured from the device's free
    memory, render/batching.py) or null (auto on CUDA, 3 on the CPU)."""
    blend_every: int = rule(Number(integer=True, at_least=0, note="0: never"), 3)
    """Updates of every tile between blends of the overlaps (passes over the canvas)."""
    updates_per_tile: float = rule(POSITIVE, 50.0)
    """Optimiser updates of every tile in each octave; ``trainer.max_steps``, when set, wins."""
    update_decay: float = rule(Number(above=0, at_most=1, note="1: the same in every octave"), 1.0)
    """Share of the previous octave's updates per tile that each later octave runs."""
    # Below 1, the coarse octaves set the composition and the fine ones add detail to it.
    finest_updates: float | None = rule(POSITIVE, None)
    """The finest octave of a pyramid runs this many times the updates per tile that
    ``update_decay`` gives it (its updates make the full-size detail); null: 1.2 on a canvas
    more than 8 times octave 1's size (5 octaves or more), 1 otherwise (render/plan.py)."""
    context: bool = True
    """Each octave after the first of a pyramid from noise also scores every tile in its
    context view (render/context.py)."""
    # The context view is the tile's neighbourhood at the first octave's scale, which keeps that
    # octave's composition.
    context_scales: list[float] | None = rule(Number(at_least=0, at_most=1), None)
    """Scales of the context views, on a log scale from the first octave's (0) to the octave's
    own (1); with several, a tile's updates take them in turn. null: ``[0.0]``, and
    ``[0.0, 0.33, 1.0]`` on a canvas more than 8 times octave 1's size, a pyramid of 5 octaves
    or more (render/context.py)."""
    # Each update still scores two images. [0, 0.33]: every other view shows the neighbourhood
    # at about a quarter of the canvas, a scale neither octave 1's view nor the tile covers.
    octaves: int | None = rule(COUNT, None)
    """Octaves of the pyramid; null: from about one tile for renders from noise, one octave for
    a photo (render/plan.py)."""
    octave_scale: float | None = rule(Number(above=1), None)
    """Size ratio of consecutive octaves; null: at most 2 from noise, DeepDream's 1.4 for a
    photo."""
    carry_detail: bool = False
    """Start each octave from the photo at its size plus the detail added so far, upsampled
    (the classic DeepDream loop; init=image only)."""
    octave_headroom: float = rule(Number(at_least=0, below=0.5), 0.0)
    """Map an upsampled canvas into ``[h, 1 - h]`` before the next octave encodes it."""
    # So that no pixel starts saturated (where the sigmoid passes no gradient).
    offload: bool = False
    """Keep the canvas and idle tiles' optimiser state in (pinned) host memory."""
    state_dtype: str = "bfloat16"
    """Storage of idle tiles' optimiser state: ``bfloat16`` (a third less memory) or
    ``float32``."""
    gif_max_size: int = rule(COUNT, 512)
    """Longest side of the frames of progress.gif, in pixels."""
    border: int = rule(NON_NEGATIVE_INT, 2)
    """Width of the tile borders drawn in render_tiles.png, in pixels."""
    decode_chunk: int = rule(COUNT, 8)
    """Tiles decoded at once when the whole canvas is decoded (a blend, a GIF frame, the
    outputs)."""


@dataclass
class CheckpointConfig:
    """Lightning checkpoints in ``<run dir>/checkpoints``; 0 turns them off."""

    every_n_steps: int = rule(Number(integer=True, at_least=0, note="0: no checkpoints"), 0)
    """A checkpoint every N steps."""
    keep: int = rule(COUNT, 2)
    """The newest checkpoints kept per octave: an older one is there when the newest is
    damaged."""


@dataclass
class OutputConfig:
    """Which picture files a render writes (render/pictures.py), by the canvas's pixel count."""

    png_max_pixels: int = rule(COUNT, 8192 * 8192)
    """render.png and render_tiles.png only up to this many pixels (browsers refuse larger
    PNGs)."""
    deepzoom: bool | None = None
    """render.dzi + render_files/ + viewer.html; null: on above ``output.large_pixels``."""
    tiff: bool | None = None
    """render.tif, a tiled pyramidal BigTIFF for printing; null: on above
    ``output.large_pixels``."""
    large_pixels: int = rule(COUNT, 4096 * 4096)
    """Pixels above which the deep zoom and the TIFF are written when not set."""
    alpha: bool = False
    """Also write the transparency map (MaCo): where the objective's gradient was large, as
    ``render_alpha.png`` and the alpha channel of ``render.png`` and ``render.tif``."""


@dataclass
class VideoConfig:
    """A video (render/motion/): frames dreamed one after another, each starting from the
    previous one moved; ``video.frames`` 0 renders one picture."""

    frames: int = rule(Number(integer=True, at_least=0, note="0: a picture, not a video"), 0)
    """Frames of the video; frame 0 is the render the rest of the config describes. With
    ``init=video``: 0 dreams every frame of the input video, a number its first ones."""
    fps: float = rule(POSITIVE, 12.0)
    """Frames per second of ``render.mp4``."""
    updates_per_frame: float = rule(POSITIVE, 10.0)
    """Optimiser updates of every tile in each frame after the first (one octave at full size);
    ``trainer.max_steps``, when set, wins."""
    zoom: float = rule(POSITIVE, 1.0)
    """Scale from one frame to the next, about ``video.center`` (above 1: into the picture)."""
    rotate: float = rule(FINITE, 0.0)
    """Rotation from one frame to the next, in degrees (positive: anticlockwise)."""
    drift: list[float] = rule(FINITE, default_factory=lambda: [0.0, 0.0])
    """Shift ``[down, right]`` of the picture from one frame to the next, in pixels."""
    center: list[float] = rule(
        Number(at_least=0, at_most=1, note="a share of the frame"),
        default_factory=lambda: [0.5, 0.5],
    )
    """The point ``[y, x]`` the zoom and rotation keep in place."""
    classes: list[int] | None = rule(NON_NEGATIVE_INT, None)
    """Class logits the objective moves to from the config's ``objective`` (frame 0), one after
    the other, evenly over the frames (a morph); null: ``objective`` throughout."""
    channels: list[int] | None = rule(NON_NEGATIVE_INT, None)
    """Channels of ``objective.layer`` the objective moves to, as ``video.classes``."""
    objectives: list[Any] | None = None
    """Objective configs the objective moves to, as ``video.classes`` (at most one of classes,
    channels, objectives)."""
    crf: int = rule(Number(integer=True, at_least=0, at_most=51, note="0: lossless"), 18)
    """Quality of ``render.mp4`` (H.264's constant rate factor: lower is better and larger)."""
    segments: int = rule(Number(integer=True, at_least=1), 1)
    """Segments the frames of ``init=video`` are cut into, each rendered by its own process or
    sweep job (``video.segment``) and joined by ``tiledream join``."""
    segment: int = rule(NON_NEGATIVE_INT, 0)
    """The segment this render makes, from 0 (``video.segment=0,1,2,3`` with ``-m``: all)."""
    settle: int = rule(NON_NEGATIVE_INT, 8)
    """Frames a segment starts before its own; ``tiledream join`` cross-fades over them from
    the segment before to this one, so the joins do not jump."""
    png: bool = True
    """Keep the frames' PNGs (``frames/00000.png``, ...) beside ``render.mp4``; they are
    written anyway, as the record a resumed video continues from."""


@dataclass
class RenderConfig:
    """The whole render: ``python scripts/render.py key=value ...``."""

    model: Any = MISSING
    """The network: an option of ``configs/model/``."""
    objective: Any = MISSING
    """What the picture maximises: an option of ``configs/objective/``."""
    param: Any = MISSING
    """How a tile's pixels are parameterised: an option of ``configs/param/``."""
    transforms: Any = MISSING
    """Robustness transforms of each tile at each step: an option of ``configs/transforms/``."""
    init: Any = MISSING
    """The starting canvas: an option of ``configs/init/``."""
    optim: Any = MISSING
    """The optimiser of each tile: an option of ``configs/optim/``."""
    tiling: TilingConfig = field(default_factory=TilingConfig)
    """Canvas geometry."""
    render: RenderSettings = field(default_factory=RenderSettings)
    """How the tiles are optimised."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoints of a render."""
    output: OutputConfig = field(default_factory=OutputConfig)
    """Which picture files a render writes."""
    video: VideoConfig = field(default_factory=VideoConfig)
    """Frames dreamed one after another, written as ``render.mp4`` (``video.frames`` above 0)."""
    trainer: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``lightning.pytorch.Trainer``."""
    seed: int = rule(Number(integer=True, at_least=0, at_most=MAX_SEED), 0)
    """The seed of the initial noise, the tile order and the transforms."""
    resume: bool = False
    """Continue from the newest checkpoint in the run directory."""


# --- models --------------------------------------------------------------------------------


@dataclass
class EmbeddedModel:
    _target_: str = "render.models.efficientnet_lite0"


@dataclass
class InceptionV1Model:
    _target_: str = "render.models.inceptionv1"
    path: str | None = None
    """Lucent's inception5h.pth; null: ``<torch hub dir>/checkpoints/inception5h.pth``."""


@dataclass
class TorchvisionModel:
    _target_: str = "render.models.torchvision_model"
    name: str = MISSING
    """The torchvision model's name (``googlenet``, ``vgg16``, ``resnet50``, ...)."""
    weights: str = "DEFAULT"
    """Its weights enum member (``DEFAULT``: the best ImageNet weights torchvision has)."""


@dataclass
class TimmModel:
    _target_: str = "render.models.timm_model"
    name: str = MISSING
    """The timm model's name, with pretrained weights (``convnext_tiny``, ...)."""


@dataclass
class OpenClipModel:
    _target_: str = "render.models.clip_model"
    name: str = "ViT-B-32"
    """open_clip's architecture (``ViT-B-32``, ``ViT-L-14``, ...: ``open_clip.list_models()``) or
    ``local-dir:FOLDER``, a folder with its open_clip_config.json and weights."""
    # OmegaConf needs typing.Union.
    pretrained: Union[str, bool] = "openai"  # noqa: UP007
    """open_clip's pretrained weights for the architecture, by tag (``openai``,
    ``laion2b_s34b_b79k``, ...), read from the local cache, never downloaded; ``false``: random
    weights (for tests)."""
    path: str | None = None
    """A weights file for the architecture (open_clip's checkpoint format); it wins over
    ``pretrained``."""


@dataclass
class CheckpointModel:
    _target_: str = "render.models.checkpoint_model"
    path: str = MISSING
    """A local checkpoint file (a state dict, a pickled module or TorchScript)."""
    arch: str = MISSING
    """Its architecture: ``efficientnet_lite0``, a torchvision classifier or a timm model
    (``timm:<name>`` picks timm when both have the name)."""


# --- objectives ----------------------------------------------------------------------------


@dataclass
class ChannelObjective:
    _target_: str = "render.objectives.channel"
    layer: str = MISSING
    """The layer, by name (``python scripts/layers.py`` lists them)."""
    channel: int = rule(NON_NEGATIVE_INT, 0)
    """The channel whose mean activation is maximised."""


@dataclass
class NeuronObjective:
    _target_: str = "render.objectives.neuron"
    layer: str = MISSING
    """The layer, by name."""
    channel: int = rule(NON_NEGATIVE_INT, 0)
    """The channel of the neuron."""
    x: int | None = rule(NON_NEGATIVE_INT, None)
    """Its column in the layer's activation grid; null: the centre of each tile."""
    y: int | None = rule(NON_NEGATIVE_INT, None)
    """Its row in the layer's activation grid; null: the centre of each tile."""


@dataclass
class DeepDreamObjective:
    _target_: str = "render.objectives.deepdream"
    layer: str = MISSING
    """The layer whose mean squared activation is maximised."""


@dataclass
class ClassLogitObjective:
    _target_: str = "render.objectives.class_logit"
    class_index: int = rule(NON_NEGATIVE_INT, MISSING)
    """The ImageNet class whose logit is maximised (1: goldfish, 309: bee)."""


@dataclass
class DirectionObjective:
    _target_: str = "render.objectives.direction"
    layer: str = MISSING
    """The layer, by name."""
    vector: list[float] = rule(FINITE, MISSING)
    """A direction in the layer's channel space, one number per channel."""


@dataclass
class ClipTextObjective:
    _target_: str = "render.objectives.clip_text"
    prompt: str = MISSING
    """The text the picture is drawn to: the cosine between CLIP's embeddings of each tile and of
    the prompt is maximised."""
    model: Any = "${model}"
    """The CLIP model that embeds the prompt: the render's (``model=clip``)."""


@dataclass
class ClipImageObjective:
    _target_: str = "render.objectives.clip_image"
    path: str = MISSING
    """A picture the render is drawn to: the cosine between CLIP's embeddings of each tile and of
    the picture (its centre square) is maximised."""
    model: Any = "${model}"
    """The CLIP model that embeds the picture: the render's (``model=clip``)."""


@dataclass
class WeightedSumObjective:
    _target_: str = "render.objectives.weighted_sum"
    terms: list[Any] = MISSING
    """The terms, each ``{objective: {_target_: ..., ...}, weight: w}``."""


@dataclass
class InterpolateObjective:
    _target_: str = "render.objectives.interpolate"
    start: Any = MISSING
    """The objective at the left (top) edge: an objective option
    (``objective@objective.start=channel``)."""
    end: Any = MISSING
    """The objective at the right (bottom) edge."""
    axis: str = "x"
    """``x``: from left to right; ``y``: from top to bottom."""
    transition: float = rule(Number(at_least=0, at_most=1, note="a share of the canvas"), 0.5)
    """The share of the canvas, in its middle, over which the weights cross-fade (1: edge to
    edge)."""


@dataclass
class AtlasObjective:
    _target_: str = "render.objectives.atlas_from_config"
    layer: str | None = None
    """The layer of ``objective.channels``."""
    channels: Any = None
    """Channels of ``objective.layer``, one per cell: a list or ``"range(a, b)"``."""
    classes: Any = None
    """Class logits, one per cell (exactly one of channels, classes, cells)."""
    cells: Any = None
    """Objective configs, one per cell."""
    grid: list[int] | None = rule(COUNT, None)
    """``[rows, columns]`` of the cells, row by row from the top left; null: the squarest."""
    blend: float = rule(Number(at_least=0, at_most=1, note="a share of a cell"), 0.5)
    """How far neighbouring cells cross-fade."""


@dataclass
class MaskObjective:
    _target_: str = "render.objectives.mask"
    path: str = MISSING
    """A picture whose colours say which objective rules where, stretched over the canvas."""
    regions: Any = MISSING
    """Colour (``'#rrggbb'`` or a name) -> objective config."""


@dataclass
class AccentuateObjective:
    _target_: str = "render.objectives.accentuate"
    target: Any = MISSING
    """The feature to raise: an objective option (``objective@objective.target=channel``)."""
    keep_layer: str = MISSING
    """The earlier layer whose activations stay close to the photo's own."""
    keep_weight: float = rule(NON_NEGATIVE, 1.0)
    """Weight of the distance to the photo's activations (the paper's lambda); 0: the target
    alone."""


# --- parameterisations, transforms, initial image, optimiser -------------------------------


@dataclass
class FourierParamConfig:
    _target_: str = "render.params.FourierParam"
    decay: float = rule(FINITE, 1.0)
    """The spectrum's scale falls as ``1 / frequency ** decay``."""
    init_std: float = rule(NON_NEGATIVE, 0.01)
    """Standard deviation of the initial noise."""
    decorrelate: bool = True
    """Colour decorrelation with ImageNet's colour covariance."""


@dataclass
class MacoParamConfig:
    _target_: str = "render.params.MacoParam"
    spectrum: str | None = None
    """The fixed magnitude: a file of ``scripts/maco_spectrum.py``; null: the shipped one
    (four public-domain and CC0 photographs, docs/guide/maco.md)."""
    image_std: float = rule(POSITIVE, 1.0)
    """Standard deviation of a tile's decorrelated channels before the sigmoid: its contrast
    (MaCo standardises to 1)."""
    init_std: float = rule(NON_NEGATIVE, 3.0)
    """Standard deviation of the initial phases (3: nearly uniform on the circle)."""


@dataclass
class PixelParamConfig:
    _target_: str = "render.params.PixelParam"
    init_std: float = rule(NON_NEGATIVE, 0.01)
    """Standard deviation of the initial noise."""
    decorrelate: bool = True
    """Colour decorrelation with ImageNet's colour covariance."""


@dataclass
class StandardTransformsConfig:
    _target_: str = "render.transforms.RobustnessTransforms"
    pad: int = rule(NON_NEGATIVE_INT, 12)
    """Padding around each tile, in pixels."""
    pad_value: float = rule(Number(at_least=0, at_most=1), 0.5)
    """The padding's pixel value."""
    jitter: int = rule(NON_NEGATIVE_INT, 8)
    """Random shift (a crop) before scaling and rotating, in pixels."""
    scales: list[float] | None = rule(POSITIVE, None)
    """Scales drawn from; null: Lucid's ``1 + (i - 5) / 50`` for i in 0..10."""
    angles: list[float] | None = rule(FINITE, None)
    """Rotations drawn from, in degrees; null: Lucid's -10..10."""
    final_jitter: int = rule(NON_NEGATIVE_INT, 4)
    """Random shift after scaling and rotating, in pixels."""


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
    """The photo, resized to ``tiling.base_size`` when that is given; a relative path not in
    the working folder is looked up next to the configs (``configs/photos/chelsea.jpg``)."""
    fit: str = "stretch"
    """How the photo is brought to ``tiling.base_size``: ``stretch`` (resized to it) or
    ``cover`` (its shape kept: enlarged to cover the canvas, then cut to it about the centre)."""


@dataclass
class VideoInit:
    _target_: str = "render.motion.video.VideoInit"
    path: str = MISSING
    """The video (MP4, MOV, ... anything FFmpeg reads), dreamed frame by frame into
    ``render.mp4`` at its frame rate with its audio track; ``video.frames`` (when above 0) dreams
    only the first ones. Its frames are resized to ``tiling.base_size`` when that is given."""
    flow: str = "dis"
    """Optical flow between its frames: ``dis`` or ``farneback`` (OpenCV, no weights),
    ``raft_small`` or ``raft_large`` (torchvision's, when their weights are in the torch hub
    cache)."""
    reliable: float = rule(Number(at_least=0, at_most=1), 0.9)
    """Weight of the previous dreamed frame, moved by the flow, in the start of the next frame
    where the flow is reliable (forward and backward flow agree); the rest is the input frame."""
    unreliable: float = rule(Number(at_least=0, at_most=1), 0.2)
    """The same weight where the flow is not reliable: occlusions, what came into view."""
    fit: str = "stretch"
    """How a frame is brought to ``tiling.base_size``: ``stretch`` or ``cover`` (as
    ``init=image``)."""


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = rule(POSITIVE, 0.05)
    """Learning rate."""
    betas: list[float] = rule(Number(at_least=0, below=1), default_factory=lambda: [0.9, 0.999])
    """Decay rates of the moment estimates."""
    eps: float = rule(NON_NEGATIVE, 1e-8)
    """Added to the denominator for numerical stability."""
    fused: bool = True
    """One kernel per step instead of a dozen: several times faster on CPU and GPU."""


@dataclass
class NAdamConfig:
    _target_: str = "torch.optim.NAdam"
    _partial_: bool = True
    lr: float = rule(POSITIVE, 0.002)
    """Learning rate (MaCo steps the phase with a large one)."""
    betas: list[float] = rule(Number(at_least=0, below=1), default_factory=lambda: [0.9, 0.999])
    """Decay rates of the moment estimates."""
    eps: float = rule(NON_NEGATIVE, 1e-8)
    """Added to the denominator for numerical stability."""
    momentum_decay: float = rule(NON_NEGATIVE, 0.004)
    """Nesterov momentum's decay (torch's ``momentum_decay``)."""


@dataclass
class NormalizedSGDConfig:
    _target_: str = "render.optim.NormalizedSGD"
    _partial_: bool = True
    lr: float = rule(POSITIVE, 0.02)
    """Mean step per parameter (a tile's gradient is divided by its mean magnitude)."""
    eps: float = rule(POSITIVE, 1e-8)
    """Keeps a tile with a zero gradient finite."""


SCHEMAS: dict[str, dict[str, type]] = {
    "model": {
        "efficientnet_lite0": EmbeddedModel,
        "inceptionv1": InceptionV1Model,
        "torchvision": TorchvisionModel,
        "timm": TimmModel,
        "clip": OpenClipModel,
        "checkpoint": CheckpointModel,
    },
    "objective": {
        "channel": ChannelObjective,
        "neuron": NeuronObjective,
        "deepdream": DeepDreamObjective,
        "class_logit": ClassLogitObjective,
        "direction": DirectionObjective,
        "clip_text": ClipTextObjective,
        "clip_image": ClipImageObjective,
        "sum": WeightedSumObjective,
        "interpolate": InterpolateObjective,
        "atlas": AtlasObjective,
        "mask": MaskObjective,
        "accentuate": AccentuateObjective,
    },
    "param": {"fft": FourierParamConfig, "maco": MacoParamConfig, "pixel": PixelParamConfig},
    "transforms": {"standard": StandardTransformsConfig, "none": NoTransformsConfig},
    "init": {"noise": NoiseInit, "image": ImageInit, "video": VideoInit},
    "optim": {"adam": AdamConfig, "nadam": NAdamConfig, "normalized": NormalizedSGDConfig},
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
    """Register the schemas in Hydra's ConfigStore: ``render_schema`` and, for each option of a
    group, ``<group>_<name>_schema``.

    They are stored outside the groups, so that ``--help`` and the command line offer only the
    real options; an option's yaml extends its schema with ``- /<group>_<name>_schema`` in its
    defaults list (the schema lands where the option does, e.g. ``objective.start``).
    """
    store = ConfigStore.instance()
    store.store(name="render_schema", node=RenderConfig)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            store.store(name=f"{group}_{name}_schema", node=node)


def config_dir() -> str:
    """The folder of ``render.yaml``: the wheel's copy inside the package, else the checkout's."""
    package = Path(__file__).resolve().parent
    installed = package / "configs"
    return str(installed if installed.is_dir() else package.parent / "configs")


def find_shipped(path: str | Path) -> Path:
    """``path``; a relative one that is not in the working folder may be a file shipped with
    the configs (``configs/photos/chelsea.jpg``, ``configs/masks/wave.png``), found there from
    any folder or install.
    """
    given = Path(path).expanduser()
    shipped = Path(config_dir()).parent / given
    return (
        shipped if not given.is_absolute() and not given.exists() and shipped.is_file() else given
    )


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
