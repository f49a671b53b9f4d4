"""model=inceptionv1: the inception5h network of Lucid and Lucent, on a weight file of its shape.

``data/inception5h-state-dict.txt`` lists the keys and shapes of Lucent's ``inception5h.pth``
(read from torch-lucent 0.1.8) and its activation shapes at 224x224; the tests build a state
dict of exactly those keys and shapes (random values: no download).
"""

import re
from pathlib import Path

import pytest
import torch
from conftest import tiledream

from render.errors import UserError
from render.models import inceptionv1
from render.models.inceptionv1 import InceptionV1, default_weights_path

REFERENCE = Path(__file__).parent / "data" / "inception5h-state-dict.txt"


def reference() -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(key -> shape in file order, layer -> activation shape at 224) from the reference."""
    keys, activations = {}, {}
    for line in REFERENCE.read_text().splitlines():
        if match := re.fullmatch(r"(\S+) \[([\d, ]+)\]", line):
            keys[match[1]] = [int(v) for v in match[2].split(",")]
        elif match := re.fullmatch(r"# (\w+): \[([\d, ]+)\]", line):
            activations[match[1]] = [int(v) for v in match[2].split(",")]
    return keys, activations


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A file with the weight file's keys and shapes, in its order, and random values."""
    generator = torch.Generator().manual_seed(0)
    keys, _ = reference()
    state = {k: torch.randn(shape, generator=generator) * 0.05 for k, shape in keys.items()}
    path = tmp_path_factory.mktemp("hub") / "inception5h.pth"
    torch.save(state, path)
    return path


def test_the_state_dict_is_the_weight_files_key_for_key():
    keys, _ = reference()
    assert len(keys) == 116
    ours = {k: list(v.shape) for k, v in InceptionV1().state_dict().items()}
    assert list(ours) == list(keys), "same keys, same order"
    assert ours == keys


def test_loads_the_file_and_exposes_lucids_layer_names(weights):
    model = inceptionv1(weights)
    saved = torch.load(weights, weights_only=True)
    for key, tensor in model.network.state_dict().items():
        assert torch.equal(tensor, saved[key])
    _, activations = reference()
    layers = list(activations)
    captured = model.capture(torch.rand(1, 3, 224, 224), [*layers, "logits"])
    for layer in layers:
        assert list(captured[layer].shape) == activations[layer], layer
    assert captured["logits"].shape == (1, 1008)
    channels = model.layer_channels()
    assert channels["mixed4d"] == 528 and channels["mixed4d_3x3_pre_relu_conv"] == 288
    assert model.mean.flatten().tolist() == pytest.approx([117 / 255] * 3)
    assert model.std.flatten().tolist() == pytest.approx([1 / 255] * 3)


def test_the_input_is_scaled_as_the_tf_graph_expects(weights):
    model = inceptionv1(weights)
    x = torch.rand(1, 3, 224, 224)
    expected = model.network.conv2d0_pre_relu_conv(
        torch.nn.functional.pad(255 * x - 117, (2, 3, 2, 3))
    )
    captured = model.capture(x, ["conv2d0_pre_relu_conv"])["conv2d0_pre_relu_conv"]
    torch.testing.assert_close(captured, expected, rtol=1e-4, atol=1e-3)


def test_the_torch_hub_cache_is_the_default_place(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert default_weights_path() == tmp_path / "hub" / "checkpoints" / "inception5h.pth"
    with pytest.raises(UserError, match=r"inception5h\.pth .*place it at .*checkpoints"):
        inceptionv1()
    default_weights_path().parent.mkdir(parents=True)
    default_weights_path().write_bytes(weights.read_bytes())
    assert inceptionv1().name == "inceptionv1"


def test_a_file_of_another_network_is_refused(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(UserError, match="not an inception5h state dict: 116 keys missing"):
        inceptionv1(other)


def test_the_command_line_renders_with_it_and_explains_a_missing_file(weights, tmp_path):
    small = [
        "model=inceptionv1",
        "objective.layer=mixed4a",
        "objective.channel=7",
        "tiling.base_size=[160,160]",
        "tiling.tile_size=[128,128]",
        "trainer.max_steps=2",
        "render.tiles_per_step=2",
        "trainer.accelerator=cpu",
    ]
    tiledream(*small, f"model.path={weights}", f"hydra.run.dir={tmp_path / 'ok'}")
    assert (tmp_path / "ok" / "render.png").is_file()
    missing = tiledream(
        *small,
        f"model.path={tmp_path / 'nowhere.pth'}",
        f"hydra.run.dir={tmp_path / 'missing'}",
        check=False,
    )
    errors = [line for line in missing.stderr.splitlines() if line.startswith("error: ")]
    assert missing.returncode == 2 and len(errors) == 1
    assert "inception5h.pth" in errors[0] and "nowhere.pth" in errors[0]
