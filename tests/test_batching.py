"""render.tiles_per_step: a number as given, or auto (measured; from the cores on the CPU)."""

import pytest
import torch
from test_configs import compose_render

from render import batching
from render.config import check_values
from render.errors import UserError
from render.models import efficientnet_lite0
from render.objectives import accentuate, channel, interpolate
from render.params import FourierParam
from render.transforms import RobustnessTransforms


@pytest.mark.parametrize("value", [0, -3, "autoo", "4x"])
def test_anything_but_a_positive_integer_or_auto_is_one_clear_error(value):
    cfg = compose_render()
    cfg.render.tiles_per_step = value
    with pytest.raises(UserError, match=r"must be an integer >= 1 or 'auto', got"):
        check_values(cfg)


@pytest.mark.parametrize("value", [None, 1, 512, "auto"])
def test_null_a_positive_integer_and_auto_keep_the_rule(value):
    cfg = compose_render()
    cfg.render.tiles_per_step = value
    check_values(cfg)


def test_a_number_is_kept():
    cfg = compose_render("render.tiles_per_step=7")
    assert batching.tiles_per_step(cfg, None, None, tiles=9, world=1) == 7


def test_the_default_is_auto_on_cuda_and_a_number_on_the_cpu(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv(batching.MEASURED_ENV, raising=False)
    trainer = compose_render().trainer
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert batching.default_tiles_per_step(trainer)[0] == batching.CPU_TILES_PER_STEP == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert batching.default_tiles_per_step(trainer) == ("auto", "the default on CUDA")
    assert batching.default_tiles_per_step(trainer, world=2)[0] == "auto", "Lightning's launcher"
    cpu = compose_render("trainer.accelerator=cpu").trainer
    assert batching.default_tiles_per_step(cpu)[0] == 3, "the CPU asked for on a GPU machine"
    monkeypatch.setenv("RANK", "1")
    number, why = batching.default_tiles_per_step(trainer, world=2)
    assert number == 3 and "torchrun" in why, "no one process can measure for the others"


def test_the_default_on_the_cpu_is_logged_with_the_reason(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose_render()
    assert cfg.render.tiles_per_step is None
    with caplog.at_level("INFO"):
        assert batching.tiles_per_step(cfg, None, None, tiles=9, world=1) == 3
    assert "render.tiles_per_step=null: 3 (the default on the CPU; auto on CUDA)" in caplog.text


def test_the_default_on_cuda_measures(monkeypatch, caplog):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    measured = []

    def auto(step, device, shard):
        measured.append((device.type, shard))
        return 40, "measured"

    monkeypatch.setattr(batching, "auto_tiles_per_step", auto)
    monkeypatch.setattr(batching, "probe", lambda *args: None)
    cfg = compose_render()
    with caplog.at_level("INFO"):
        assert batching.tiles_per_step(cfg, efficientnet_lite0(), None, tiles=100, world=1) == 40
    assert measured == [("cuda", 100)]
    assert "render.tiles_per_step=null: auto (the default on CUDA)" in caplog.text
    assert "render.tiles_per_step=auto: 40 tiles per step (measured)" in caplog.text


def test_auto_on_the_cpu_takes_two_tiles_per_core_within_the_shard(monkeypatch, caplog):
    monkeypatch.setattr(batching.os, "cpu_count", lambda: 3)
    monkeypatch.delenv(batching.MEASURED_ENV, raising=False)
    cfg = compose_render(
        "render.tiles_per_step=auto", "trainer.accelerator=cpu", "tiling.tile_size=[64,64]"
    )
    model, objective = efficientnet_lite0(), channel("blocks.2.0", 3)
    with caplog.at_level("INFO"):
        assert batching.tiles_per_step(cfg, model, objective, tiles=100, world=2) == 6
    assert "render.tiles_per_step=auto: 6 tiles per step (2 per CPU core, 3 cores)" in caplog.text
    assert batching.os.environ.pop(batching.MEASURED_ENV) == "6", "handed to launched ranks"
    assert batching.tiles_per_step(cfg, model, objective, tiles=9, world=2) == 5, "the shard"


@pytest.mark.parametrize(
    "objective",
    [
        channel("blocks.2.0", 3),
        interpolate(channel("blocks.2.0", 3), channel("blocks.2.0", 4)),
        accentuate(channel("blocks.2.0", 3), "blocks.1"),
    ],
    ids=["channel", "interpolate", "accentuate"],
)
def test_the_probe_runs_a_steps_forward_and_backward(objective):
    seen = []
    model = efficientnet_lite0()
    model.network.conv_stem.register_full_backward_hook(lambda *args: seen.append(args))
    step = batching.probe(
        model,
        objective,
        FourierParam((64, 64)),
        RobustnessTransforms(),
        torch.device("cpu"),
    )
    step(2)
    assert len(seen) == 1 and seen[0][2][0].shape[0] == 2, "a backward pass through 2 tiles"


def test_the_probe_of_a_render_with_context_views_shows_the_model_two_images_per_tile():
    seen = []
    model = efficientnet_lite0()
    model.network.conv_stem.register_full_backward_hook(lambda *args: seen.append(args))
    param, transforms = FourierParam((64, 64)), RobustnessTransforms()
    batching.probe(model, channel("blocks.2.0", 3), param, transforms, torch.device("cpu"), 2)(3)
    assert seen[0][2][0].shape[0] == 6
