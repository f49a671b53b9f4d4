"""Transformers (timm ViT, DeiT, Swin) and ConvNeXt: layers read as NCHW maps, random weights."""

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import TINY, assert_a_picture, tiledream
from PIL import Image

from render import render_image
from render.cli import layers
from render.errors import UserError
from render.models import FeatureModel, describe_layers, from_module
from render.models.hub import timm_network
from render.objectives import channel

# name: (timm model, options making it small, a block, its MLP's post-activation layer, the map
# at 224 pixels, the map at 236x200 pixels: the size a 224 tile reaches the model at).
FAMILIES = {
    "vit": (
        "vit_tiny_patch16_224",
        {"depth": 2},
        "blocks.1",
        "blocks.1.mlp.act",
        (14, 14),
        (15, 13),  # patches padded to whole ones
    ),
    "deit": (
        "deit_tiny_distilled_patch16_224",  # class and distillation tokens
        {"depth": 2},
        "blocks.1",
        "blocks.1.mlp.act",
        (14, 14),
        (15, 13),
    ),
    "swin": (
        "swin_tiny_patch4_window7_224",  # NHWC maps, [n, h * w, C] tokens in the MLP
        {"depths": (1, 1, 1, 1), "embed_dim": 32, "num_heads": (1, 1, 1, 1)},
        "layers.1.blocks.0",
        "layers.1.blocks.0.mlp.act",
        (28, 28),
        (30, 25),  # odd sizes padded before each patch merging
    ),
    "convnext": (
        "convnext_atto",
        {"conv_mlp": False},  # the MLP runs on NHWC maps
        "stages.1.blocks.0",
        "stages.1.blocks.0.mlp.act",
        (28, 28),
        (29, 25),
    ),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[FeatureModel, tuple]:
    """A small random-weight model of each family, and its row of FAMILIES."""
    torch.manual_seed(0)
    row = FAMILIES[request.param]
    name, options = row[:2]
    return from_module(timm_network(name, pretrained=False, **options), name=name), row[2:]


def test_blocks_and_mlp_activations_are_nchw_maps_of_the_grid(family) -> None:
    model, (block, act, grid, grid_236x200) = family
    channels = model.layer_channels()
    out = model.capture(torch.rand(2, 3, 224, 224), [block, act])
    assert out[block].shape == (2, channels[block], *grid)
    assert out[act].shape == (2, channels[act], *grid)
    assert channels[act] == 4 * channels[block]  # the MLP's hidden width
    wide = model.capture(torch.rand(1, 3, 236, 200), [act])[act]
    assert wide.shape == (1, channels[act], *grid_236x200)


def test_the_listing_gives_mlp_activations_with_their_grid(family) -> None:
    model, (block, act, grid, _) = family
    listed = {name: (channels, size) for name, channels, size in describe_layers(model)}
    assert listed[act] == (model.layer_channels()[act], grid)
    assert listed[block][1] == grid
    assert listed["logits"] == (1000, None)


def test_a_channel_objective_on_the_mlp_reaches_the_pixels(family) -> None:
    model, (_, act, *_) = family
    images = torch.rand(1, 3, 224, 224, requires_grad=True)
    score = channel(act, 5)(model.capture(images, [act]), images)
    score.backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0


def test_class_and_register_tokens_are_dropped() -> None:
    torch.manual_seed(0)
    network = timm_network("vit_tiny_patch16_224", pretrained=False, depth=1, reg_tokens=4)
    assert network.num_prefix_tokens == 5
    model = from_module(network)
    model.layer_channels()  # its layouts measured before the hook below records anything
    tokens: list[torch.Tensor] = []
    hook = network.blocks[0].register_forward_hook(lambda *args: tokens.append(args[-1]))
    try:
        images = torch.rand(1, 3, 64, 48)
        grid = model.capture(images, ["blocks.0"])["blocks.0"]
    finally:
        hook.remove()
    assert tokens[0].shape == (1, 5 + 4 * 3, 192)
    assert grid.shape == (1, 192, 4, 3)
    # Row-major patches after the five prefix tokens: the patch in row 2, column 1 is token 12.
    assert torch.equal(grid[0, :, 2, 1], tokens[0][0, 5 + 2 * 3 + 1])


def test_a_network_of_one_input_size_names_the_tile_rule() -> None:
    # Built by timm directly, without dynamic_img_size: it takes 224x224 only.
    network = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1)
    model = from_module(network, name="fixed_vit")
    assert model.capture(torch.rand(1, 3, 224, 224), ["blocks.0"])["blocks.0"].shape[-2:] == (
        14,
        14,
    )
    with pytest.raises(UserError, match=r"'fixed_vit' takes only 224x224 images, got 236x236"):
        model.capture(torch.rand(1, 3, 236, 236), ["blocks.0"])


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight vit_tiny_patch16_224 state dict (what a user's checkpoint would hold)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vit") / "vit_tiny.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict(), path)
    return path


VIT = ["model=checkpoint", "model.arch=timm:vit_tiny_patch16_224"]


def test_tiledream_layers_lists_a_vit_with_its_token_grid(
    vit_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert layers([*VIT, f"model.path={vit_file}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "blocks.11.mlp.act\t768\t14x14" in lines and "blocks.11\t192\t14x14" in lines
    assert lines[-1] == "logits\t1000\t-"


@pytest.mark.slow
def test_a_random_weight_vit_renders_through_the_command_line(
    vit_file: Path, tmp_path: Path
) -> None:
    tiledream(
        *[o for o in TINY if not o.startswith("objective.")],
        *VIT,
        f"model.path={vit_file}",
        "objective.layer=blocks.3.mlp.act",
        "objective.channel=7",
        f"hydra.run.dir={tmp_path}",
    )
    assert_a_picture(tmp_path / "render.png", (112, 112))


def test_render_image_raises_a_vit_mlp_channel() -> None:
    network = timm_network("vit_tiny_patch16_224", pretrained=False, depth=2).eval()
    act = "blocks.1.mlp.act"
    image = render_image(
        channel(act, 7),
        model=network,
        size=64,
        tile=64,
        seed=0,
        overrides=["render.updates_per_tile=8", "trainer.enable_progress_bar=false"],
    )
    model = from_module(network)

    def score(picture: Image.Image) -> float:
        pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255)
        with torch.no_grad():
            return float(model.capture(pixels.permute(2, 0, 1)[None], [act])[act][:, 7].mean())

    assert image.size == (64, 64)
    assert score(image) > score(Image.new("RGB", image.size, (128, 128, 128)))
