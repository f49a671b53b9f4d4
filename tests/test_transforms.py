"""Tests for the robustness transforms (render.transforms)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from hydra.utils import instantiate
from torchvision.transforms import InterpolationMode

from render.errors import UserError
from render.transforms import DEFAULT_ANGLES, DEFAULT_SCALES, NoTransforms, RobustnessTransforms

IDENTITY = {"pad": 0, "jitter": 0, "scales": [1], "angles": [0], "final_jitter": 0}


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int = 4, h: int = 32, w: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=_seeded(seed))


def _reference(
    t: RobustnessTransforms, images: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The transforms one tile at a time: pad with the constant, crop, TF.affine, crop.

    Draws in the documented order: first jitter (n, 2) as (top, left), scale indices (n,),
    angle indices (n,), final jitter (n, 2).
    """
    n = images.shape[0]
    first = torch.randint(0, t.jitter + 1, (n, 2), generator=generator).tolist()
    scale_idx = torch.randint(0, len(t.scales), (n,), generator=generator).tolist()
    angle_idx = torch.randint(0, len(t.angles), (n,), generator=generator).tolist()
    last = torch.randint(0, t.final_jitter + 1, (n, 2), generator=generator).tolist()
    padded = F.pad(images, [t.pad] * 4, mode="constant", value=t.pad_value)
    mid_h, mid_w = padded.shape[-2] - t.jitter, padded.shape[-1] - t.jitter
    out_h, out_w = mid_h - t.final_jitter, mid_w - t.final_jitter
    tiles = []
    for i in range(n):
        (top, left), (top2, left2) = first[i], last[i]
        tile = padded[i, :, top : top + mid_h, left : left + mid_w]
        scale, angle = t.scales[scale_idx[i]], t.angles[angle_idx[i]]
        if scale != 1 or angle != 0:
            tile = t.pad_value + TF.affine(
                tile - t.pad_value,
                angle=angle,
                translate=[0.0, 0.0],
                scale=scale,
                shear=[0.0, 0.0],
                interpolation=InterpolationMode.BILINEAR,
            )
        tiles.append(tile[:, top2 : top2 + out_h, left2 : left2 + out_w])
    return torch.stack(tiles)


def _is_shift(t: RobustnessTransforms, seed: int, n: int) -> list[bool]:
    """Which of ``n`` tiles drawn from ``seed`` get scale 1 and angle 0 (pure shifts)."""
    g = _seeded(seed)
    torch.randint(0, t.jitter + 1, (n, 2), generator=g)
    scales = [t.scales[i] for i in torch.randint(0, len(t.scales), (n,), generator=g)]
    angles = [t.angles[i] for i in torch.randint(0, len(t.angles), (n,), generator=g)]
    return [s == 1 and a == 0 for s, a in zip(scales, angles, strict=True)]


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
    x = _images(3, 9, 14).double()
    assert torch.equal(RobustnessTransforms(**IDENTITY)(x, _seeded(0)), x)


SHIFTS_ONLY = [
    {"pad": 3, "jitter": 5, "scales": [1], "angles": [0], "final_jitter": 2},
    {"pad": 0, "jitter": 4, "scales": [1], "angles": [0], "final_jitter": 3},
    {"pad": 6, "jitter": 0, "scales": [1], "angles": [0], "final_jitter": 1},
    {"pad": 12, "jitter": 8, "scales": [1], "angles": [0], "final_jitter": 4},
]


@pytest.mark.parametrize("kwargs", SHIFTS_ONLY)
@pytest.mark.parametrize(("h", "w"), [(17, 23), (32, 32), (31, 8), (224, 224)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_integer_shifts_equal_pad_and_crop(kwargs, h: int, w: int, dtype) -> None:
    t = RobustnessTransforms(**kwargs)
    x = _images(6, h, w, seed=h * w).to(dtype)
    out = t(x, _seeded(h + w))
    ref = _reference(t, x, _seeded(h + w))
    assert out.shape == ref.shape == (6, 3, *t.output_size(h, w))
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


WARPS = [
    {},  # Lucid's defaults
    {"pad": 2, "jitter": 7, "final_jitter": 3},  # jitter > pad: crops cut into the image
    {"pad": 0, "jitter": 6, "scales": [0.8, 1.25], "angles": [-30, 30], "final_jitter": 2},
    {"pad": 5, "jitter": 0, "scales": [0.7], "angles": [0], "final_jitter": 0},
    {"pad": 1, "jitter": 1, "scales": [1], "angles": [17], "final_jitter": 1},
    {"pad": 4, "jitter": 9, "scales": [1, 1.1], "angles": [0, 5], "final_jitter": 3},
]


@pytest.mark.parametrize("kwargs", WARPS)
@pytest.mark.parametrize(("h", "w"), [(17, 23), (32, 40), (33, 33)])
def test_batched_output_equals_per_tile_reference(kwargs, h: int, w: int) -> None:
    t = RobustnessTransforms(**kwargs)
    x = _images(8, h, w, seed=h)
    for dtype, atol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        out = t(x.to(dtype), _seeded(w))
        ref = _reference(t, x.to(dtype), _seeded(w))
        assert out.shape == ref.shape == (8, 3, *t.output_size(h, w))
        torch.testing.assert_close(out, ref, atol=atol, rtol=0)


def test_mixed_batch_keeps_tile_order_and_shift_tiles_exact() -> None:
    t = RobustnessTransforms(pad=4, jitter=3, scales=[1, 1.1], angles=[0, 5], final_jitter=2)
    x = _images(16, 21, 26)
    shift = _is_shift(t, 0, 16)
    assert any(shift) and not all(shift)
    out, ref = t(x, _seeded(0)), _reference(t, x, _seeded(0))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(out[shift], ref[shift], atol=1e-6, rtol=0)


def test_draws_only_the_documented_numbers_from_the_generator() -> None:
    for kwargs in [{}, IDENTITY, SHIFTS_ONLY[0]]:
        t = RobustnessTransforms(**kwargs)
        ours, theirs = _seeded(9), _seeded(9)
        t(_images(5), ours)
        _reference(t, _images(5), theirs)
        assert torch.equal(ours.get_state(), theirs.get_state())


@pytest.mark.parametrize("size", [7, 8])
def test_rotation_by_90_degrees_is_exact_about_the_centre(size: int) -> None:
    x = _images(2, size, size).double()
    out = RobustnessTransforms(**{**IDENTITY, "angles": [90]})(x, _seeded(0))
    torch.testing.assert_close(out, torch.rot90(x, -1, (-2, -1)), atol=1e-12, rtol=0)


def test_low_precision_images_keep_their_dtype() -> None:
    t = RobustnessTransforms()
    x = _images()
    out = t(x.bfloat16(), _seeded(2))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), t(x.bfloat16().float(), _seeded(2)), atol=1e-2, rtol=0)


def test_jitter_is_a_random_crop() -> None:
    x = _images(6, 20, 24)
    out = RobustnessTransforms(**{**IDENTITY, "jitter": 3})(x, _seeded(5))
    assert out.shape == (6, 3, 17, 21)
    for i in range(6):
        crops = [x[i, :, a : a + 17, b : b + 21] for a in range(4) for b in range(4)]
        assert any(torch.allclose(out[i], c, atol=1e-6, rtol=0) for c in crops)


def test_pad_uses_pad_value() -> None:
    x = _images(2, 10, 12)
    out = RobustnessTransforms(**{**IDENTITY, "pad": 3, "pad_value": 0.25})(x, _seeded(0))
    assert out.shape == (2, 3, 16, 18)
    torch.testing.assert_close(out[..., 3:-3, 3:-3], x, atol=1e-6, rtol=0)
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


@pytest.mark.parametrize(
    ("kwargs", "n"),
    [
        ({"pad": 2, "jitter": 1, "scales": [1.1, 0.9], "angles": [7, -7], "final_jitter": 1}, 2),
        # Seed 0 draws three warped tiles and one shift here: both sampling paths at once.
        ({"pad": 1, "jitter": 3, "scales": [1, 0.9], "angles": [0, 7], "final_jitter": 1}, 4),
        ({"pad": 1, "jitter": 2, "scales": [1], "angles": [0], "final_jitter": 1}, 2),
    ],
)
def test_gradient_matches_finite_differences(kwargs, n: int) -> None:
    t = RobustnessTransforms(**kwargs)
    if n == 4:
        assert _is_shift(t, 0, n) == [False, False, False, True]
    x = _images(n, 6, 7).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: t(v, _seeded(0)), (x,))


def test_gradient_is_the_transpose_of_pad_and_crop() -> None:
    t = RobustnessTransforms(**SHIFTS_ONLY[0])
    x = _images(3, 10, 12).requires_grad_(True)
    weights = torch.rand(3, 3, *t.output_size(10, 12))
    (t(x, _seeded(1)) * weights).sum().backward()
    ref_x = x.detach().clone().requires_grad_(True)
    (_reference(t, ref_x, _seeded(1)) * weights).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, atol=1e-6, rtol=0)


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


def test_one_generator_per_tile_transforms_a_tile_the_same_in_any_batch() -> None:
    t = RobustnessTransforms()
    x = _images(4)
    together = t(x, [_seeded(10 + i) for i in range(4)])
    for i in range(4):
        alone = t(x[i : i + 1], [_seeded(10 + i)])
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-6, rtol=0)
        # ...which is that tile's draw from its generator, as a batch of one.
        torch.testing.assert_close(alone, t(x[i : i + 1], _seeded(10 + i)), atol=0, rtol=0)
    assert not torch.allclose(together[0], t(x, _seeded(10))[0]) or not torch.allclose(
        together[1], t(x, _seeded(10))[1]
    ), "per-tile streams differ from one shared stream"
    with pytest.raises(ValueError, match="3 generators for a batch of 4 tiles"):
        t(x, [_seeded(i) for i in range(3)])
