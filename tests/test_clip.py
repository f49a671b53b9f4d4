"""model=clip (open_clip's CLIP) and the clip_text / clip_image objectives.

The model is a tiny architecture in open_clip's own folder format (``local-dir:``: an
open_clip_config.json, and weights when a test saves some), on random weights: nothing is
downloaded.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from conftest import ROOT, assert_a_picture, run_render, tiledream
from PIL import Image

from render import render_image
from render.cli import layers
from render.config import build, compose_config
from render.errors import UserError
from render.models import ClipModel, clip_model, describe_layers, from_module
from render.models.clip import _tag_weights
from render.objectives import clip_image, clip_text, interpolate

#: Two blocks of 64 wide on 16-pixel patches of a 64-pixel input (a 4x4 grid), a one-block text
#: tower, 32-number embeddings.
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
BLOCK = "visual.transformer.resblocks.1"
MLP = f"{BLOCK}.mlp.gelu"  # the MLP's post-activation features


def clip_folder(path: Path) -> Path:
    """``path`` made an open_clip model folder of the tiny architecture (no weights)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clip_folder(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def model(folder: Path) -> ClipModel:
    return clip_model(f"local-dir:{folder}", pretrained=False)


def random_clip(folder: Path) -> list[str]:
    """The overrides of the tiny model on random weights."""
    return ["model=clip", f"model.name=local-dir:{folder}", "model.pretrained=false"]


def cosine(model: ClipModel, picture: Image.Image, target: tuple[float, ...]) -> float:
    """The cosine between the model's embedding of the whole ``picture`` and ``target``."""
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255).permute(2, 0, 1)
    with torch.no_grad():
        embedding = model(pixels[None])
    return float(torch.nn.functional.cosine_similarity(embedding, torch.tensor([target])))


def test_the_image_tower_takes_any_size_and_its_layers_are_token_grids(model: ClipModel) -> None:
    listed = {name: (channels, size) for name, channels, size in describe_layers(model)}
    assert listed[MLP] == (256, (4, 4)) and listed[BLOCK] == (64, (4, 4))
    assert listed["logits"] == (32, None)  # the image embedding
    tokens: list[torch.Tensor] = []
    hook = model.network.get_submodule(BLOCK).register_forward_hook(
        lambda *args: tokens.append(args[-1])
    )
    try:
        grid = model.capture(torch.rand(2, 3, 76, 60), [BLOCK, MLP, "logits"])
    finally:
        hook.remove()
    assert grid[MLP].shape == (2, 256, 4, 3) and grid["logits"].shape == (2, 32)
    # The class token dropped, the patches row by row: row 2, column 1 is token 1 + 2 * 3 + 1.
    assert tokens[0].shape == (2, 1 + 4 * 3, 64)
    assert torch.equal(grid[BLOCK][:, :, 2, 1], tokens[0][:, 8])
    # At its own size the tower is open_clip's image encoder, with CLIP's normalisation.
    images = torch.rand(1, 3, 64, 64)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.text.clip.encode_image((images - mean) / std)
    torch.testing.assert_close(model(images), expected)


def test_tiledream_layers_lists_the_image_tower_with_its_token_grids(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert layers(random_clip(folder)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{MLP}\t256\t4x4" in lines and "visual.conv1\t64\t4x4" in lines
    assert lines[-1] == "logits\t32\t-"


def test_weights_load_from_model_path_and_from_the_models_folder(
    folder: Path, model: ClipModel, tmp_path: Path
) -> None:
    state = model.text.clip.state_dict()
    state["visual.proj"] = state["visual.proj"] * 2  # not the random weights
    torch.save(state, tmp_path / "weights.pt")
    own = clip_folder(tmp_path / "own")
    shutil.copy(tmp_path / "weights.pt", own / "open_clip_pytorch_model.bin")
    for loaded, file in (
        (clip_model(f"local-dir:{folder}", path=str(tmp_path / "weights.pt")), "weights.pt"),
        (clip_model(f"local-dir:{own}"), "own/open_clip_pytorch_model.bin"),
    ):
        assert torch.equal(loaded.network.visual.proj, state["visual.proj"])
        assert loaded.weights_file == str(tmp_path / file)  # what a render's recipe records
    # The CLIP objectives build the render's model again: the same one, loaded once.
    assert clip_model(f"local-dir:{own}") is clip_model(f"local-dir:{own}")
    torch.save({"visual.proj": state["visual.proj"]}, tmp_path / "other.pt")
    with pytest.raises(UserError, match=r"other\.pt does not load into CLIP model"):
        clip_model(f"local-dir:{folder}", path=str(tmp_path / "other.pt"))


def test_missing_weights_are_one_error_saying_where_it_looked_and_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))  # open_clip's url cache is ~/.cache/clip
    with pytest.raises(UserError) as info:
        build(compose_config(["model=clip"]).model)  # ViT-B-32 with the openai weights
    message = str(info.value)
    assert "\n" not in message and "CLIP model 'ViT-B-32' needs its 'openai' weights" in message
    assert "timm/vit_base_patch32_clip_224.openai in the Hugging Face cache" in message
    assert str(tmp_path / ".cache" / "clip" / "ViT-B-32.pt") in message
    assert f"the Hugging Face cache {tmp_path / 'hub'}" in message
    assert "hf download timm/vit_base_patch32_clip_224.openai" in message
    assert "model.path=" in message


def test_a_tags_weights_are_found_in_either_of_open_clips_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import open_clip
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))
    # Where open_clip's url download leaves OpenAI's file, then its Hugging Face download.
    url_file = tmp_path / ".cache" / "clip" / "ViT-B-32.pt"
    url_file.parent.mkdir(parents=True)
    url_file.touch()
    found, cfg = _tag_weights(open_clip, "ViT-B-32", "openai")
    assert found == str(url_file) and cfg["quick_gelu"]  # OpenAI's weights want QuickGELU
    repo = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc")
    (repo / "snapshots" / "abc").mkdir(parents=True)
    (repo / "snapshots" / "abc" / "open_clip_model.safetensors").touch()
    found, _ = _tag_weights(open_clip, "ViT-B-32", "openai")
    assert found == str(repo / "snapshots" / "abc" / "open_clip_model.safetensors")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"name": "ViT-B-33"}, "unknown CLIP architecture 'ViT-B-33'; close matches: ViT-B-32"),
        ({"pretrained": "openia"}, "no pretrained weights tagged 'openia'; valid: openai, "),
        ({"pretrained": True}, "must name open_clip's pretrained weights"),
        ({"path": "/no/such.pt"}, "model.path '/no/such.pt' is not a file"),
        ({"name": "local-dir:/no/such"}, "/no/such is not an open_clip model folder"),
        ({"name": "local-dir:FOLDER"}, "holds no weights (open_clip_model.safetensors or"),
    ],
)
def test_a_model_that_cannot_be_had_is_one_clear_error(
    folder: Path, options: dict, message: str
) -> None:
    if options.get("name") == "local-dir:FOLDER":
        options = {"name": f"local-dir:{folder}"}  # no weights there, and random not asked for
    with pytest.raises(UserError) as info:
        clip_model(**options)
    assert message in str(info.value)


def test_the_objectives_build_from_the_config_with_the_renders_model(folder: Path) -> None:
    cfg = compose_config([*random_clip(folder), "objective=clip_text", "objective.prompt=a cat"])
    model = build(cfg.model)
    objective = build(cfg.objective)
    assert repr(objective) == "clip_text('a cat')"
    assert torch.allclose(torch.tensor(objective.target), model.embed_text("a cat"))
    objective.validate(model.layer_channels())
    with pytest.raises(
        UserError, match=r"embeddings of 32 numbers, but the model's output has 1000"
    ):
        objective.validate({"logits": 1000})
    photo = ROOT / "docs" / "images" / "goldfish.jpg"
    cfg = compose_config([*random_clip(folder), "objective=clip_image", f"objective.path={photo}"])
    assert repr(build(cfg.objective)) == "clip_image('goldfish.jpg')"
    # With another model than CLIP's, the prompt has no embedding.
    with pytest.raises(UserError, match=r"clip_text needs a CLIP model \(model=clip\)"):
        clip_text("a cat", from_module(torch.nn.Conv2d(3, 2, 1), name="conv"))


def test_clip_image_embeds_the_pictures_centre_square_as_the_model_sees_it(
    model: ClipModel, tmp_path: Path
) -> None:
    pixels = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    TF.to_pil_image(pixels).save(tmp_path / "wide.png")
    centre = TF.to_pil_image(pixels[:, :, 16:80])
    objective = clip_image(str(tmp_path / "wide.png"), model)
    assert cosine(model, centre, objective.target) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(UserError, match=r"clip_image: path '/no/such\.png' is not a file"):
        clip_image("/no/such.png", model)


def render(objective, model: ClipModel, size, updates: int, seed: int = 0) -> Image.Image:
    """The canvas of ``size`` rendered in tiles of 64 by ``updates`` updates of each tile."""
    overrides = [f"render.updates_per_tile={updates}", "trainer.enable_progress_bar=false"]
    return render_image(objective, model=model, size=size, tile=64, seed=seed, overrides=overrides)


def test_the_render_raises_the_cosine_with_the_prompt(model: ClipModel) -> None:
    objective = clip_text("a lighthouse", model)
    start = cosine(model, render(objective, model, 64, updates=1), objective.target)
    end = cosine(model, render(objective, model, 64, updates=16), objective.target)
    assert end > start + 0.02


def test_a_prompt_on_each_half_draws_each_half_to_its_prompt(model: ClipModel) -> None:
    lighthouse, storm = clip_text("a lighthouse", model), clip_text("a storm", model)

    def leaning(picture: Image.Image) -> list[float]:
        """How much more each half is the lighthouse than the storm."""
        return [
            cosine(model, half, lighthouse.target) - cosine(model, half, storm.target)
            for half in (picture.crop((0, 0, 64, 64)), picture.crop((64, 0, 128, 64)))
        ]

    # The same noise, the layout swapped: with the weight maps ignored both would be one sum.
    left_right = leaning(render(interpolate(lighthouse, storm, transition=0), model, (64, 128), 16))
    right_left = leaning(render(interpolate(storm, lighthouse, transition=0), model, (64, 128), 16))
    assert left_right[0] > right_left[0] + 0.005 and left_right[1] < right_left[1] - 0.005


@pytest.mark.slow
def test_two_prompts_render_through_the_command_line(folder: Path, tmp_path: Path) -> None:
    tiledream(
        *random_clip(folder),
        "objective=interpolate",
        "objective@objective.start=clip_text",
        "objective@objective.end=clip_text",
        "objective.start.prompt=a lighthouse",
        "objective.end.prompt=a storm",
        "tiling.base_size=[64,112]",
        "tiling.tile_size=[64,64]",
        "trainer.max_steps=4",
        "render.tiles_per_step=2",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={tmp_path}",
    )
    assert_a_picture(tmp_path / "render.png", (112, 64))
    log = (tmp_path / "render.log").read_text()
    assert log.count("random weights (model.pretrained=false)") == 1  # said, and built once


@pytest.mark.slow
def test_missing_weights_on_the_command_line_are_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    done = run_render(
        "model=clip",
        "objective=clip_text",
        "objective.prompt=a lighthouse",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "'openai' weights" in errors[0] and str(tmp_path / "hf") in errors[0]
    assert "Traceback" not in done.stderr
