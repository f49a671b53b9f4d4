"""The Python API: ``render_image`` on the command line's code path, with any model."""

from __future__ import annotations

import os
import re
import shlex
import signal

import numpy as np
import pytest
import torch
from PIL import Image
from test_render_cli import TINY
from torch import nn

from render import compose_config, render_image
from render import objectives as obj
from render.errors import RenderStopped, UserError
from render.models import from_module
from render.objectives.activations import Channel
from render.recipe import read_recipe

QUIET = ["trainer.enable_progress_bar=false"]


def small_net() -> nn.Sequential:
    """A random-weight classifier of the test's own making."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def channel_mean(net: nn.Module, image: Image.Image, layer: int, channel: int) -> float:
    """Mean of one channel of ``net[:layer + 1]`` on ``image`` (ImageNet-normalised)."""
    model = from_module(net)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        return float(net[: layer + 1](model.normalise(x))[:, channel].mean())


def test_snippet_runs_on_a_users_sequential_and_raises_its_channel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = small_net()
    objective = obj.channel("2", 5) - 0.05 * obj.total_variation()
    image = render_image(
        objective,
        model=net,
        size=(96, 160),
        tile=(64, 64),
        seed=0,
        overrides=["render.updates_per_tile=4", "param=pixel", *QUIET],
    )
    assert isinstance(image, Image.Image) and image.size == (160, 96) and image.mode == "RGB"
    assert list(tmp_path.iterdir()) == [], "nothing is written without out_dir"
    grey = Image.new("RGB", image.size, (128, 128, 128))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 160, 3), np.uint8))
    rendered = channel_mean(net, image, 2, 5)
    assert rendered > max(channel_mean(net, grey, 2, 5), channel_mean(net, noise, 2, 5))


@pytest.mark.slow
def test_render_image_equals_the_command_lines_render_png(tmp_path, tiny_run):
    with Image.open(tiny_run / "render.png") as png:
        cli = np.asarray(png.convert("RGB"))
    image = render_image(overrides=[*TINY, *QUIET], out_dir=tmp_path / "api")
    assert np.array_equal(np.asarray(image), cli)
    # out_dir gets every output the command line writes.
    for name in ("render.png", "render_tiles.png", "progress.gif"):
        assert (tmp_path / "api" / name).is_file()
    # Its recipe is the command line's (but QUIET), as the tiledream command that renders it.
    api, cli_recipe = (read_recipe(d / "render.png") for d in (tmp_path / "api", tiny_run))
    trainer = {**cli_recipe.config["trainer"], "enable_progress_bar": False}
    assert api.config == {**cli_recipe.config, "trainer": trainer}
    assert api.choices == cli_recipe.choices
    assert api.command == shlex.join(["tiledream", *TINY, *QUIET]) and not api.in_python


def test_objective_and_size_arguments_are_the_overrides_they_name(tmp_path):
    overrides = ["tiling.base_size=[112,112]", "tiling.tile_size=[64,64]", "seed=3"]
    assert compose_config(overrides) == compose_config(
        [f"tiling.base_size=[{112},{112}]", "tiling.tile_size=[64,64]", "seed=3"]
    )
    net = small_net()
    by_arguments = render_image(
        obj.channel("0", 1), model=net, size=112, tile=64, seed=3, overrides=[*TINY[2:], *QUIET]
    )
    by_overrides = render_image(obj.channel("0", 1), model=net, overrides=[*TINY, "seed=3", *QUIET])
    assert np.array_equal(np.asarray(by_arguments), np.asarray(by_overrides))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "resnet50"}, "model must be a torch.nn.Module"),
        ({"objective": "channel"}, "objective must be a render.objectives.Objective"),
        ({"objective": obj.channel("2", 99)}, "channel 99"),
        ({"objective": obj.channel("conv", 0)}, "'conv'"),
        ({"size": (0, 64)}, "tiling.base_size must be (height, width) of positive ints"),
        ({"overrides": "seed=1"}, "overrides must be a list of strings"),
        ({"overrides": ["tiling.no_such_key=1"]}, "no_such_key"),
        ({"seed": 1.5}, "seed must be an int"),
        ({"overrides": ["video.frames=2"]}, "render_image returns one picture"),
        ({"overrides": ["init=video", "init.path=clip.mp4"]}, "and init=video makes a video"),
    ],
)
def test_bad_input_is_a_clear_user_error(kwargs, message):
    call = {"model": small_net(), "objective": obj.channel("2", 0), "size": 64, "tile": 64}
    call["overrides"] = ["render.updates_per_tile=1", *QUIET]
    with pytest.raises(UserError) as error:
        render_image(**{**call, **kwargs})
    assert message in str(error.value)


class _SigtermAtStep2(Channel):
    """A channel objective that sends SIGTERM to its own process as it scores step 2."""

    def __call__(self, activations, images):
        calls = getattr(self, "_calls", 0) + 1
        object.__setattr__(self, "_calls", calls)
        if calls == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__call__(activations, images)


def test_a_stopped_render_image_says_how_to_resume_and_resumes_to_the_same_picture(tmp_path):
    # One tile, one octave: SIGTERM during step 2 stops the render after that step.
    call = {"model": small_net(), "size": 64, "tile": 64, "seed": 0}
    overrides = ["trainer.max_steps=4", "render.blend_every=1", *QUIET]
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RenderStopped) as stopped:
        render_image(_SigtermAtStep2("2", 5), **call, overrides=overrides, out_dir=tmp_path)
    checkpoint = tmp_path / "checkpoints" / "step=2.ckpt"
    assert str(stopped.value) == (
        f"stopped by SIGTERM at step 2 of octave 1/1: checkpoint saved ({checkpoint}); resume "
        f"with the same render_image() call, out_dir={str(tmp_path)!r} and 'resume=true' in "
        f"its overrides"
    )
    assert stopped.value.exit_status == 143
    assert signal.getsignal(signal.SIGTERM) is handler, "the caller's handler is back"
    assert checkpoint.is_file() and not (tmp_path / "render.png").exists()
    resumed = render_image(
        obj.channel("2", 5), **call, overrides=[*overrides, "resume=true"], out_dir=tmp_path
    )
    whole = render_image(obj.channel("2", 5), **call, overrides=overrides)
    assert np.array_equal(np.asarray(resumed), np.asarray(whole))
    # The recipe says what its config does not describe.
    assert read_recipe(tmp_path / "render.png").in_python == ("model", "objective")


def test_render_image_takes_tiles_per_step_auto(caplog):
    base = [o for o in TINY if not o.startswith("render.tiles_per_step")]
    with caplog.at_level("INFO"):
        image = render_image(overrides=[*base, "render.tiles_per_step=auto", *QUIET])
    assert image.size == (112, 112)
    chosen = re.search(
        r"render\.tiles_per_step=auto: (\d+) tiles per step \(2 per CPU core", caplog.text
    )
    assert chosen, caplog.text
    assert f"4 steps of up to {chosen[1]} tiles" in caplog.text
