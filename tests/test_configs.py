"""Tests for configs/ and render.config: composition as scripts/render.py does it, building
every option of every config group, schema validation, trainer pass-through and the run helpers
that turn config values into a tiling and octaves.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
import torchvision
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from pytorch_lightning.callbacks import ModelCheckpoint

from render import config, objectives
from render.config import SCHEMAS, build, register_configs
from render.errors import UserError
from render.initial import ImageInit, NoiseInit
from render.models import FeatureModel
from render.objectives import Objective
from render.outputs import ProgressGif
from render.params import FourierParam, MacoParam, PixelParam
from render.pictures import Pictures
from render.plan import octave_schedule
from render.run import make_tiling, make_trainer, octave_sizes
from render.transforms import NoTransforms, RobustnessTransforms
from tiling import TilingModule

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
GROUPS = tuple(SCHEMAS)

register_configs()


def options(group: str) -> list[str]:
    """The options of a config group, as files under configs/<group>/."""
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


def compose_render(*overrides: str) -> DictConfig:
    """Compose configs/render.yaml with command-line overrides, as @hydra.main does."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="render", overrides=list(overrides))


def error_chain(error: BaseException) -> str:
    """The messages of an exception and of everything that caused it (what Hydra prints)."""
    messages = []
    seen: BaseException | None = error
    while seen is not None:
        messages.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(messages)


@pytest.fixture(scope="module")
def lite0() -> FeatureModel:
    """The default model, built from the default config."""
    model = build(compose_render().model)
    assert isinstance(model, FeatureModel)
    return model


@pytest.fixture(scope="module")
def lite0_channels(lite0: FeatureModel) -> dict[str, int]:
    return lite0.layer_channels()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache and every download failing; returns the checkpoints folder."""

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"network blocked by the test ({url})")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


# -- every option composes, on its schema --------------------------------------------------

ALL_OPTIONS = [(group, name) for group in GROUPS for name in options(group)]


def test_every_group_has_options_and_the_defaults_compose() -> None:
    cfg = compose_render()
    for group in GROUPS:
        assert options(group), f"configs/{group}/ has no options"
        assert cfg[group]._target_, group


# The schema each option extends; every option needs a build test below (model=clip and the
# CLIP objectives: tests/test_clip.py), and an entry here.
OPTION_SCHEMAS: dict[str, dict[str, type]] = {
    "model": {
        "efficientnet_lite0": config.EmbeddedModel,
        "inceptionv1": config.InceptionV1Model,
        "googlenet": config.TorchvisionModel,
        "vgg16": config.TorchvisionModel,
        "resnet50": config.TorchvisionModel,
        "timm": config.TimmModel,
        "clip": config.OpenClipModel,
        "checkpoint": config.CheckpointModel,
    },
    "objective": {
        "channel": config.ChannelObjective,
        "neuron": config.NeuronObjective,
        "deepdream": config.DeepDreamObjective,
        "class_logit": config.ClassLogitObjective,
        "direction": config.DirectionObjective,
        "clip_text": config.ClipTextObjective,
        "clip_image": config.ClipImageObjective,
        "sum": config.WeightedSumObjective,
        "interpolate": config.InterpolateObjective,
        "atlas": config.AtlasObjective,
        "mask": config.MaskObjective,
        "accentuate": config.AccentuateObjective,
    },
    "param": {
        "fft": config.FourierParamConfig,
        "maco": config.MacoParamConfig,
        "pixel": config.PixelParamConfig,
    },
    "transforms": {
        "standard": config.StandardTransformsConfig,
        "none": config.NoTransformsConfig,
    },
    "init": {"noise": config.NoiseInit, "image": config.ImageInit, "video": config.VideoInit},
    "optim": {
        "adam": config.AdamConfig,
        "nadam": config.NAdamConfig,
        "normalized": config.NormalizedSGDConfig,
    },
}


def test_every_option_is_known_to_these_tests() -> None:
    assert set(OPTION_SCHEMAS) == set(GROUPS)
    for group in GROUPS:
        assert set(options(group)) == set(OPTION_SCHEMAS[group]), group


@pytest.mark.parametrize(("group", "name"), ALL_OPTIONS, ids=[f"{g}={n}" for g, n in ALL_OPTIONS])
def test_every_option_composes_on_its_schema(group: str, name: str) -> None:
    cfg = compose_render(f"{group}={name}")
    node = cfg[group]
    # Each option extends its structured schema, so typos and wrong types fail at composition.
    schema = OPTION_SCHEMAS[group].get(name)
    assert schema is not None, f"add {group}={name} to OPTION_SCHEMAS and give it a build test"
    assert OmegaConf.get_type(node) is schema
    assert node._target_ == schema._target_
    # The other groups keep their defaults.
    default = compose_render()
    for other in GROUPS:
        if other != group:
            assert cfg[other] == default[other]


@pytest.fixture
def schemas_as_options(tmp_path: Path) -> Iterator[Path]:
    """configs/ as it was when the schemas were options of their groups: ``<group>/<name>_schema``
    in the ConfigStore (gone again after the test), each option's yaml naming it relatively."""
    store = ConfigStore.instance()
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=group, name=f"{name}_schema", node=node)
    legacy = tmp_path / "configs"
    shutil.copytree(CONFIGS, legacy)
    for group in SCHEMAS:
        for path in (legacy / group).glob("*.yaml"):
            # - /model_timm_schema -> - timm_schema (and - /init_image_schema@init -> ...@init)
            text = re.sub(rf"- /{group}_(\w+)_schema", r"- \1_schema", path.read_text())
            path.write_text(text)
    yield legacy
    for group, schemas in SCHEMAS.items():
        for name in schemas:
            del store.repo[group][f"{name}_schema.yaml"]


def test_schemas_outside_the_groups_compose_every_option_as_before(
    schemas_as_options: Path,
) -> None:
    # --help lists the groups' options: the schemas left them, and no composed config changed.
    # The defaults, then the k-th option of every group at once: 10 compositions cover them all.
    groups = {group: options(group) for group in GROUPS}
    most = max(len(names) for names in groups.values())
    cases = [[f"{g}={names[k % len(names)]}" for g, names in groups.items()] for k in range(most)]
    cases.insert(0, [])
    composed = {}
    for folder in (schemas_as_options, CONFIGS):
        with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
            composed[folder] = [compose(config_name="render", overrides=case) for case in cases]
    for overrides, before, after in zip(cases, *composed.values(), strict=True):
        assert OmegaConf.to_yaml(after) == OmegaConf.to_yaml(before), overrides
        for key in before:
            assert OmegaConf.get_type(after, key) is OmegaConf.get_type(before, key), key


# -- model -----------------------------------------------------------------------------------


def test_model_efficientnet_lite0_builds(
    lite0: FeatureModel, lite0_channels: dict[str, int]
) -> None:
    assert compose_render().model == compose_render("model=efficientnet_lite0").model
    assert lite0.name == "efficientnet_lite0"
    assert next(iter(lite0_channels.items())) == ("conv_stem", 32)
    assert lite0_channels["logits"] == 1000


def _weights_file(name: str, member: str = "DEFAULT") -> str:
    url = torchvision.models.get_model_weights(name)[member].url
    return os.path.basename(urlparse(url).path)


@pytest.mark.parametrize(
    ("option", "overrides", "member"),
    [
        ("googlenet", [], "DEFAULT"),
        ("vgg16", [], "DEFAULT"),
        ("resnet50", [], "DEFAULT"),
        ("resnet50", ["model.weights=IMAGENET1K_V1"], "IMAGENET1K_V1"),
    ],
    ids=["googlenet", "vgg16", "resnet50", "resnet50-v1-weights"],
)
def test_model_torchvision_options_name_the_missing_weights_file(
    offline: Path, option: str, overrides: list[str], member: str
) -> None:
    cfg = compose_render(f"model={option}", *overrides)
    assert cfg.model.name == option
    with pytest.raises(UserError) as info:
        build(cfg.model)
    message = str(info.value)
    filename = _weights_file(option, member)
    assert f"place {filename} in {offline}" in message
    assert f"download it from https://download.pytorch.org/models/{filename}" in message
    assert not offline.exists() or not any(offline.iterdir())


def test_model_inceptionv1_offline_names_its_weights_file_and_where_it_goes(
    offline: Path,
) -> None:
    with pytest.raises(UserError) as info:
        build(compose_render("model=inceptionv1").model)
    message = str(info.value)
    assert f"place it at {offline / 'inception5h.pth'}" in message
    assert "model.path=" in message and "inception5h.pth" in message


def test_model_timm_offline_fails_fast_naming_the_cache(
    offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    hf_home = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    # huggingface_hub reads the environment once, at import: mirror it in the loaded constants.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    cfg = compose_render("model=timm", "model.name=resnet18")
    assert cfg.model.name == "resnet18"
    with pytest.raises(UserError) as info:
        build(cfg.model)
    message = str(info.value)
    assert "timm model 'resnet18'" in message
    assert "timm/resnet18.a1_in1k" in message and "model.safetensors" in message
    assert str(hf_home / "hub") in message


def test_model_timm_unknown_name_is_a_user_error() -> None:
    with pytest.raises(UserError, match="resnet1888"):
        build(compose_render("model=timm", "model.name=resnet1888").model)


def test_model_checkpoint_loads_a_saved_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = torchvision.models.resnet18(weights=None)
    path = tmp_path / "net.pth"
    torch.save(network.state_dict(), path)

    cfg = compose_render("model=checkpoint", f"model.path='{path}'", "model.arch=resnet18")
    assert cfg.model.path == str(path) and cfg.model.arch == "resnet18"
    model = build(cfg.model)
    assert isinstance(model, FeatureModel)
    assert torch.equal(model.network.fc.weight, network.fc.weight)
    channels = model.layer_channels()
    assert channels["layer4"] == 512 and channels["logits"] == 1000
    objectives.channel("layer4", 511).validate(channels)

    missing = tmp_path / "missing.pth"
    with pytest.raises(UserError, match=re.escape(str(missing))):
        build(
            compose_render(
                "model=checkpoint", f"model.path='{missing}'", "model.arch=resnet18"
            ).model
        )


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["model=timm"], "model.name"), (["model=checkpoint"], "model.path")],
    ids=["timm-name", "checkpoint-path"],
)
def test_unset_mandatory_value_is_a_user_error(overrides: list[str], key: str) -> None:
    cfg = compose_render(*overrides)
    with pytest.raises(UserError, match=key):
        build(cfg.model)


# -- objective -------------------------------------------------------------------------------


# The CLIP objectives embed their target with the render's CLIP model: built in test_clip.py.
@pytest.mark.parametrize("name", [n for n in options("objective") if not n.startswith("clip_")])
def test_objective_options_build_and_validate_against_the_model(
    name: str, lite0_channels: dict[str, int]
) -> None:
    # objective=mask has no default mask; give it the shipped one.
    regions = "{ff8000:{_target_:render.objectives.class_logit,class_index:1},0040ff:" + (
        "{_target_:render.objectives.channel,layer:blocks.5.0.bn1,channel:2}}"
    )
    needs = {
        "mask": [f"objective.path={CONFIGS / 'masks' / 'wave.png'}", f"objective.regions={regions}"]
    }
    cfg = compose_render(f"objective={name}", *needs.get(name, []))
    objective = build(cfg.objective)
    assert isinstance(objective, Objective)
    objective.validate(lite0_channels)
    assert objective.layers <= set(lite0_channels)
    # The option's values reach the objective its target names.
    factory = getattr(objectives, cfg.objective._target_.rpartition(".")[2])
    kwargs = OmegaConf.to_container(cfg.objective, resolve=True)
    del kwargs["_target_"]
    # Nested objective configs are checked in their own tests.
    if name not in ("sum", "interpolate", "mask", "accentuate"):
        assert objective == factory(**kwargs)


def test_objective_overrides_reach_the_objective(lite0_channels: dict[str, int]) -> None:
    cfg = compose_render(
        "objective=neuron", "objective.layer=blocks.2.0", "objective.channel=3", "objective.x=2"
    )
    assert build(cfg.objective) == objectives.neuron("blocks.2.0", 3, x=2)
    cfg = compose_render("objective=class_logit", "objective.class_index=1")
    assert build(cfg.objective) == objectives.class_logit(1)
    cfg = compose_render("objective=deepdream", "objective.layer=conv_stem")
    assert build(cfg.objective) == objectives.deepdream("conv_stem")


def test_objective_accentuate_builds_its_target_and_the_keep_term() -> None:
    cfg = compose_render(
        "objective=accentuate",
        "objective@objective.target=channel",
        "objective.target.channel=3",
        "objective.keep_weight=0.5",
    )
    target = objectives.channel(cfg.objective.target.layer, 3)
    assert build(cfg.objective) == objectives.accentuate(target, "blocks.2", 0.5)


def test_objective_sum_builds_each_term_with_its_weight() -> None:
    cfg = compose_render("objective=sum")
    objective = build(cfg.objective)
    terms = objective.terms()
    assert [weight for weight, _ in terms] == [term.weight for term in cfg.objective.terms]
    assert all(isinstance(term, Objective) for _, term in terms)
    first = cfg.objective.terms[0].objective
    assert terms[0][1] == objectives.channel(first.layer, first.channel)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["objective=channel", "objective.channel=99999"], "99999"),
        (["objective=neuron", "objective.layer=blocks.99"], "blocks.99"),
        (["objective=deepdream", "objective.layer=no_such_layer"], "no_such_layer"),
        (["objective=class_logit", "objective.class_index=1000"], "1000"),
        (["objective=direction", "objective.layer=conv_stem"], "32 channels"),
        (["objective=sum", "objective.terms.0.objective.channel=99999"], "99999"),
        (["objective=accentuate", "objective.keep_layer=blocks.99"], "blocks.99"),
    ],
    ids=["channel", "neuron", "deepdream", "class_logit", "direction", "sum", "accentuate"],
)
def test_objective_validation_rejects_what_the_model_lacks(
    overrides: list[str], expected: str, lite0_channels: dict[str, int]
) -> None:
    objective = build(compose_render(*overrides).objective)
    with pytest.raises(UserError, match=expected):
        objective.validate(lite0_channels)


# -- param, transforms, init, optim ----------------------------------------------------------


@pytest.mark.parametrize(("name", "cls"), [("fft", FourierParam), ("pixel", PixelParam)])
def test_param_options_build_with_the_callers_tile_size(name: str, cls: type) -> None:
    cfg = compose_render(f"param={name}", "param.init_std=0.02", "param.decorrelate=false")
    param = build(cfg.param, tile_size=(16, 24))
    assert type(param) is cls
    assert param.tile_size == (16, 24)
    assert param.init_std == 0.02 and param.decorrelate is False
    images = param(param.init(2, torch.Generator().manual_seed(0)))
    assert images.shape == (2, 3, 16, 24)


def test_param_fft_decay_reaches_the_codec() -> None:
    param = build(compose_render("param=fft", "param.decay=1.5").param, tile_size=(8, 8))
    assert param.decay == 1.5


def test_param_maco_builds_with_its_settings() -> None:
    cfg = compose_render("param=maco", "param.image_std=1.5", "param.init_std=2.0")
    param = build(cfg.param, tile_size=(16, 24))
    assert type(param) is MacoParam and param.tile_size == (16, 24)
    assert param.image_std == 1.5 and param.init_std == 2.0 and param.spectrum is None
    assert param(param.init(2, torch.Generator().manual_seed(0))).shape == (2, 3, 16, 24)


def test_transforms_standard_builds_with_overrides() -> None:
    cfg = compose_render("transforms=standard", "transforms.pad=6", "transforms.scales=[1.0,1.1]")
    transforms = build(cfg.transforms)
    assert isinstance(transforms, RobustnessTransforms)
    assert transforms.pad == 6 and list(transforms.scales) == [1.0, 1.1]
    out = transforms(torch.rand(2, 3, 32, 32), torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, *transforms.output_size(32, 32))


def test_transforms_none_is_the_identity() -> None:
    transforms = build(compose_render("transforms=none").transforms)
    assert isinstance(transforms, NoTransforms)
    images = torch.rand(2, 3, 8, 8)
    assert transforms(images, torch.Generator()) is images


def test_init_noise_has_no_size_or_canvas() -> None:
    init = build(compose_render().init)
    assert isinstance(init, NoiseInit)
    assert init.size() is None and init.canvas((8, 8)) is None


def test_init_image_reads_the_photo(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (30, 20), (255, 0, 0)).save(path)  # width 30, height 20
    init = build(compose_render("init=image", f"init.path='{path}'").init)
    assert isinstance(init, ImageInit)
    assert init.size() == (20, 30)
    canvas = init.canvas((10, 12))
    assert canvas.shape == (1, 3, 10, 12)
    assert torch.allclose(canvas[0, :, 5, 6], torch.tensor([1.0, 0.0, 0.0]), atol=1e-3)

    missing = tmp_path / "nothere.png"
    with pytest.raises(UserError, match=re.escape(str(missing))):
        build(compose_render("init=image", f"init.path='{missing}'").init)


def test_optim_adam_is_a_partial_with_the_configured_lr() -> None:
    factory = build(compose_render("optim=adam", "optim.lr=0.1").optim)
    assert isinstance(factory, functools.partial)
    optimizer = factory([torch.nn.Parameter(torch.zeros(3))])
    assert type(optimizer) is torch.optim.Adam
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.1
    assert tuple(group["betas"]) == (0.9, 0.999) and group["eps"] == 1e-8


def test_optim_nadam_is_a_partial_with_the_configured_lr() -> None:
    factory = build(compose_render("optim=nadam", "optim.lr=0.5").optim)
    optimizer = factory([torch.nn.Parameter(torch.zeros(3))])
    assert type(optimizer) is torch.optim.NAdam
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.5 and group["momentum_decay"] == 0.004


# -- experiment presets ----------------------------------------------------------------------

EXPERIMENTS = options("experiment") if (CONFIGS / "experiment").is_dir() else []


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_preset_composes_and_its_objective_fits_its_model(name: str) -> None:
    cfg = compose_render(f"experiment={name}")
    for group in GROUPS:
        assert cfg[group]._target_, group
    objective = build(cfg.objective)
    assert isinstance(objective, Objective)
    if cfg.model._target_ != "render.models.efficientnet_lite0":
        pytest.skip(f"{cfg.model._target_} needs downloaded or local weights")
    objective.validate(build(cfg.model).layer_channels())


def test_poster_16k_preset_is_a_16384_pyramid_with_gigapixel_outputs() -> None:
    cfg = compose_render("experiment=poster_16k")
    base = (16384, 16384)
    assert tuple(cfg.tiling.base_size) == base
    assert cfg.render.tiles_per_step == "auto" and cfg.render.blend_every == 1
    assert cfg.checkpoint.every_n_steps > 0
    tile = (int(cfg.tiling.tile_size[0]), int(cfg.tiling.tile_size[1]))
    octaves, scale = octave_schedule(base, tile, cfg.render.octaves, cfg.render.octave_scale, False)
    sizes = octave_sizes(base, list(tile), octaves, scale)
    # The counts its comment states: 8 octaves from one tile, 9604 tiles at full size.
    assert octaves == 8 and sizes[0] == tile
    tiles = [make_tiling(cfg.tiling, size).num_tiles() for size in sizes]
    assert tiles[0] == 1 and tiles[-1] == 9604 and sum(tiles) == 13626
    chosen = Pictures.choose(cfg.output, base)
    assert chosen.deepzoom and chosen.tiff and not chosen.png


def test_unknown_experiment_is_reported() -> None:
    with pytest.raises(MissingConfigException, match="experiment/no_such_preset"):
        compose_render("experiment=no_such_preset")


# -- schema validation at composition --------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("tiling.tile_sise=[1,2]", "tile_sise"),
        ("render.tiles_per_stepp=3", "tiles_per_stepp"),
        ("objective.chanel=3", "chanel"),
    ],
)
def test_misspelt_key_fails_at_composition(override: str, key: str) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_render(override)
    assert key in str(info.value)
    assert f"Key '{key}' not in" in error_chain(info.value)


@pytest.mark.parametrize(
    ("override", "full_key", "value"),
    [
        ("render.blend_every=abc", "render.blend_every", "abc"),
        ("objective.channel=abc", "objective.channel", "abc"),
        ("tiling.tile_size=[a,b]", "tiling.tile_size[0]", "a"),
        # OmegaConf names a Union element by its index alone.
        ("tiling.tile_overlap=[x,0.25]", "0", "x"),
        ("render.offload=maybe", "render.offload", "maybe"),
    ],
)
def test_wrong_type_fails_at_composition(override: str, full_key: str, value: str) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_render(override)
    assert override in str(info.value)
    chain = error_chain(info.value)
    assert f"Value '{value}'" in chain and f"full_key: {full_key}" in chain


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(MissingConfigException) as info:
        compose_render("objective=chanel")
    assert "objective/chanel" in str(info.value)
    assert "\tchannel\n" in str(info.value)


# -- trainer pass-through --------------------------------------------------------------------


@pytest.fixture
def trainer_dirs(tmp_path: Path) -> tuple[Path, Path, ProgressGif]:
    return tmp_path / "run", tmp_path / "run" / "checkpoints", ProgressGif()


def test_trainer_keys_reach_the_composed_config_and_the_trainer(
    trainer_dirs: tuple[Path, Path, ProgressGif],
) -> None:
    cfg = compose_render(
        "trainer.max_steps=7",
        "+trainer.gradient_clip_val=0.5",
        "trainer.accelerator=cpu",
        "checkpoint.every_n_steps=5",
    )
    assert cfg.trainer.max_steps == 7
    trainer = make_trainer(cfg, *trainer_dirs)
    assert trainer.max_steps == 7
    assert trainer.gradient_clip_val == 0.5
    checkpoints = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
    assert len(checkpoints) == 1
    assert checkpoints[0].dirpath == str(trainer_dirs[1])


def test_unknown_trainer_key_is_a_user_error(
    trainer_dirs: tuple[Path, Path, ProgressGif],
) -> None:
    cfg = compose_render("+trainer.not_a_trainer_argument=1")
    assert cfg.trainer.not_a_trainer_argument == 1
    with pytest.raises(UserError, match="not_a_trainer_argument"):
        make_trainer(cfg, *trainer_dirs, steps=5)


def test_bad_trainer_value_is_a_user_error(trainer_dirs: tuple[Path, Path, ProgressGif]) -> None:
    with pytest.raises(UserError, match="warp_drive"):
        make_trainer(compose_render("trainer.accelerator=warp_drive"), *trainer_dirs, steps=5)


def test_lightning_misconfiguration_is_a_user_error(
    trainer_dirs: tuple[Path, Path, ProgressGif],
) -> None:
    with pytest.raises(UserError, match="devices=0"):
        cfg = compose_render("trainer.devices=0", "trainer.accelerator=cpu")
        make_trainer(cfg, *trainer_dirs, steps=5)


def test_the_planned_steps_apply_unless_max_steps_is_given(
    trainer_dirs: tuple[Path, Path, ProgressGif],
) -> None:
    cfg = compose_render("trainer.accelerator=cpu")
    assert make_trainer(cfg, *trainer_dirs, steps=12).max_steps == 12
    given = compose_render("trainer.accelerator=cpu", "trainer.max_steps=3")
    assert make_trainer(given, *trainer_dirs, steps=12).max_steps == 3
    with pytest.raises(UserError, match=r"trainer\.max_steps is not set"):
        make_trainer(cfg, *trainer_dirs)


# -- octaves and tiling ----------------------------------------------------------------------


def test_octave_sizes_go_coarse_to_fine_and_never_below_a_tile() -> None:
    assert octave_sizes((448, 448), [224, 224], 1, 1.4) == [(448, 448)]
    assert octave_sizes((448, 448), [224, 224], 1, 0.5) == [(448, 448)]  # scale unused
    assert octave_sizes((800, 1200), [224, 224], 3, 2.0) == [(224, 300), (400, 600), (800, 1200)]
    assert octave_sizes((300, 600), [100, 100], 2, 1.5) == [(200, 400), (300, 600)]
    sizes = octave_sizes((448, 448), [224, 224], 4, 2.0)
    assert sizes == [(224, 224), (224, 224), (224, 224), (448, 448)]
    assert octave_sizes((450, 700), [64, 64], 2, 1.4) == [(321, 500), (450, 700)]
    # Never larger than the canvas either (a tile taller than it is make_tiling's error).
    assert octave_sizes((100, 600), [224, 224], 2, 2.0) == [(100, 300), (100, 600)]


@pytest.mark.parametrize(
    ("octaves", "scale", "expected"),
    [
        (0, 1.4, "render.octaves must be >= 1, got 0"),
        (-2, 1.4, "render.octaves must be >= 1, got -2"),
        (2, 1.0, "render.octave_scale must be > 1, got 1.0"),
        (3, 0.5, "render.octave_scale must be > 1, got 0.5"),
    ],
)
def test_octave_sizes_errors(octaves: int, scale: float, expected: str) -> None:
    with pytest.raises(UserError) as info:
        octave_sizes((448, 448), [224, 224], octaves, scale)
    assert str(info.value) == expected


def test_octave_settings_compose_into_octave_sizes() -> None:
    cfg = compose_render("render.octaves=2", "render.octave_scale=2")
    assert cfg.render.octave_scale == 2.0
    sizes = octave_sizes(
        tuple(cfg.tiling.base_size),
        list(cfg.tiling.tile_size),
        cfg.render.octaves,
        cfg.render.octave_scale,
    )
    assert sizes == [(224, 224), (448, 448)]


def test_make_tiling_builds_the_configured_tiling() -> None:
    cfg = compose_render("tiling.placement=even", "tiling.window=cosine")
    tiling = make_tiling(cfg.tiling, (448, 448))
    assert isinstance(tiling, TilingModule)
    assert tiling.tiling_pattern() == [3, 3]
    reference = TilingModule([224, 224], [0.25, 0.25], [448, 448], "even", "cosine")
    assert torch.equal(tiling.get_tile_masks(), reference.get_tile_masks())
    # The size argument, not tiling.base_size, sets the canvas (octaves change it).
    assert make_tiling(cfg.tiling, (224, 300)).tiling_pattern() == [1, 2]


@pytest.mark.parametrize(
    ("overrides", "size", "expected"),
    [
        ([], (100, 300), "tile_size [224, 224] must fit in the base size [100, 300]"),
        (["tiling.tile_size=[64,512]"], (448, 448), "[64, 512]"),
        (["tiling.tile_overlap=[1.0,0.25]"], (448, 448), "got 1.0"),
        (["tiling.tile_overlap=[0.25,-0.5]"], (448, 448), "got -0.5"),
        (["tiling.tile_size=[0,224]"], (448, 448), "tile_size must be positive"),
        (["tiling.placement=diagonal"], (448, 448), "'diagonal'"),
        (["tiling.window=hamming"], (448, 448), "'hamming'"),
    ],
    ids=[
        "tile-over-canvas",
        "tile-wider-than-canvas",
        "overlap-1",
        "overlap-negative",
        "tile-zero",
        "placement",
        "window",
    ],
)
def test_make_tiling_reports_tiling_errors_as_user_errors(
    overrides: list[str], size: tuple[int, int], expected: str
) -> None:
    cfg = compose_render(*overrides)
    with pytest.raises(UserError) as info:
        make_tiling(cfg.tiling, size)
    message = str(info.value)
    assert message.startswith("tiling: ")
    assert expected in message


def test_tile_overlap_in_pixels_reaches_the_tiling() -> None:
    cfg = compose_render("tiling.tile_overlap=[32,32]")
    tiling = make_tiling(cfg.tiling, (448, 448))
    reference = TilingModule([224, 224], [32, 32], [448, 448])
    assert torch.equal(tiling.get_tile_masks(), reference.get_tile_masks())
