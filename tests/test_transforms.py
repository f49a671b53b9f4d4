"""Tests for the robustness transforms (render.transforms)."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from render.errors import UserError
from render.transforms import DEFAULT_ANGLES, DEFAULT_SCALES, NoTransforms, RobustnessTransforms

IDENTITY = {"pad": 0, "jitter": 0, "scales": [1], "angles": [0], "final_jitter": 0}


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int = 4, h: int = 32, w: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=_seeded(seed))


def test_defaults_are_lucids() -> None:
    t = RobustnessTransforms()
    assert (t.pad, t.pad_value, t.jitter, t.final_jitter) == (12, 0.5, 8, 4)
    assert t.scales == DEFAULT_SCALES
    assert DEFAULT_SCALES[0] == pytest.approx(0.9) and DEFAULT_SCALES[-1] == pytest.approx(1.1)
    assert len(DEFAULT_SCALES) == 11
    assert t.angles == DEFAULT_ANGLES == tuple(float(a) for a in range(-10, 11))


def test_output_size_and_stacking() -> None:
    t = RobustnessTransforms()
    out = t(_images(5, 32, 40), _seeded(0))
    assert out.shape == (5, 3, 44, 52)  # + 2 * 12 - 8 - 4
    assert t.output_size(32, 40) == (44, 52)
    assert out.dtype == torch.float32
    assert t(_images(2).double(), _seeded(0)).dtype == torch.float64


def test_same_seed_same_output_and_global_rng_unused() -> None:
    t = RobustnessTransforms()
    x = _images()
    torch.manual_seed(1)
    a = t(x, _seeded(3))
    torch.manual_seed(2)
    b = t(x, _seeded(3))
    assert torch.equal(a, b)


def test_different_seeds_differ() -> None:
    t = RobustnessTransforms()
    x = _images()
    assert not torch.equal(t(x, _seeded(3)), t(x, _seeded(4)))


def test_each_tile_gets_its_own_transform() -> None:
    t = RobustnessTransforms()
    x = _images(1).expand(8, -1, -1, -1)
    out = t(x, _seeded(0))
    for i in range(8):
        for j in range(i):
            assert not torch.allclose(out[i], out[j]), (i, j)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jitter": 5},
        {"final_jitter": 5},
        {"scales": [0.8, 1.2]},
        {"angles": [-20, 20]},
    ],
)
def test_each_random_step_varies_across_tiles(kwargs) -> None:
    t = RobustnessTransforms(**{**IDENTITY, **kwargs})
    x = _images(1).expand(6, -1, -1, -1)
    out = t(x, _seeded(1))
    assert any(not torch.equal(out[0], out[i]) for i in range(1, 6))


def test_zero_parameter_transforms_return_input_unchanged() -> None:
    x = _images()
    assert torch.equal(RobustnessTransforms(**IDENTITY)(x, _seeded(0)), x)


def test_jitter_is_a_random_crop() -> None:
    x = _images(6, 20, 24)
    out = RobustnessTransforms(**{**IDENTITY, "jitter": 3})(x, _seeded(5))
    assert out.shape == (6, 3, 17, 21)
    for i in range(6):
        crops = [x[i, :, a : a + 17, b : b + 21] for a in range(4) for b in range(4)]
        assert any(torch.equal(out[i], c) for c in crops)


def test_pad_uses_pad_value() -> None:
    x = _images(2, 10, 12)
    out = RobustnessTransforms(**{**IDENTITY, "pad": 3, "pad_value": 0.25})(x, _seeded(0))
    assert out.shape == (2, 3, 16, 18)
    assert torch.equal(out[..., 3:-3, 3:-3], x)
    border = out.clone()
    border[..., 3:-3, 3:-3] = 0.25
    assert torch.all(border == 0.25)


def test_scale_zooms_about_the_centre_and_fills_with_pad_value() -> None:
    x = torch.ones(1, 3, 32, 32)
    out = RobustnessTransforms(**{**IDENTITY, "scales": [0.5], "pad_value": 0.2})(x, _seeded(0))
    assert out.shape == x.shape
    assert torch.allclose(out[..., 12:20, 12:20], torch.ones(1))
    assert torch.allclose(out[..., :4, :4], torch.tensor(0.2))


def test_rotation_fills_corners_with_pad_value() -> None:
    x = torch.ones(1, 3, 32, 32)
    out = RobustnessTransforms(**{**IDENTITY, "angles": [45], "pad_value": 0.0})(x, _seeded(0))
    assert torch.allclose(out[..., 14:18, 14:18], torch.ones(1))
    assert torch.allclose(out[..., :3, :3], torch.zeros(1))


def test_gradients_flow() -> None:
    x = _images(3).requires_grad_(True)
    RobustnessTransforms()(x, _seeded(0)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gradient_matches_finite_differences() -> None:
    t = RobustnessTransforms(pad=2, jitter=1, scales=[1.1, 0.9], angles=[7, -7], final_jitter=1)
    x = _images(2, 6, 7).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: t(v, _seeded(0)), (x,))


def test_empty_batch() -> None:
    out = RobustnessTransforms()(torch.zeros(0, 3, 16, 16), _seeded(0))
    assert out.shape == (0, 3, 28, 28)


def test_no_transforms_returns_input() -> None:
    x = _images()
    t = NoTransforms()
    assert t(x, _seeded(0)) is x
    assert t.output_size(32, 40) == (32, 40)
    assert isinstance(instantiate({"_target_": "render.transforms.NoTransforms"}), NoTransforms)


def test_hydra_instantiate_with_lists() -> None:
    cfg = {"_target_": "render.transforms.RobustnessTransforms", "scales": [1, 1.05], "pad": 4}
    t = instantiate(cfg)
    assert t.scales == (1.0, 1.05) and t.pad == 4


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"pad": -1}, "pad"),
        ({"jitter": -2}, "jitter"),
        ({"final_jitter": 1.5}, "final_jitter"),
        ({"pad": True}, "pad"),
        ({"pad_value": float("nan")}, "pad_value"),
        ({"scales": []}, "scales"),
        ({"scales": [1.0, 0.0]}, "scales"),
        ({"scales": [-1.0]}, "scales"),
        ({"scales": "1.0"}, "scales"),
        ({"angles": []}, "angles"),
        ({"angles": [float("inf")]}, "angles"),
        ({"angles": 5}, "angles"),
    ],
)
def test_bad_arguments_raise_user_error(kwargs, name: str) -> None:
    with pytest.raises(UserError, match=name):
        RobustnessTransforms(**kwargs)


def test_tiles_too_small_raise_user_error() -> None:
    t = RobustnessTransforms(pad=0, jitter=8, final_jitter=4)
    with pytest.raises(UserError, match="too small"):
        t(torch.zeros(1, 3, 12, 30), _seeded(0))
    assert t(torch.zeros(1, 3, 13, 30), _seeded(0)).shape == (1, 3, 1, 18)
