"""Tests for render.objectives: values on hand-made tensors, composition, validation, gradients."""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable

import pytest
import torch
from hydra.utils import instantiate
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from render.errors import UserError
from render.objectives import (
    Objective,
    WeightedSum,
    channel,
    class_logit,
    deepdream,
    direction,
    diversity,
    l1,
    l2,
    neuron,
    total_variation,
    weighted_sum,
)

LAYER = "blocks.3"
CHANNELS = {"blocks.2": 24, LAYER: 8, "blocks.4": 16, "conv_head": 32, "logits": 10}


def _activations(seed: int = 0, batch: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        LAYER: torch.randn(batch, 8, 5, 6, generator=generator),
        "blocks.4": torch.randn(batch, 16, 3, 3, generator=generator),
        "logits": torch.randn(batch, 10, generator=generator),
    }


def _images(seed: int = 0, batch: int = 3, size: int = 12) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _close(actual: torch.Tensor, expected: torch.Tensor | float) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype))


# --- values on hand-made activations -------------------------------------------------------------


def test_channel_is_mean_of_that_channel() -> None:
    acts = _activations()
    score = channel(LAYER, 5)(acts, _images())
    assert score.ndim == 0
    _close(score, acts[LAYER][:, 5].mean())
    assert not torch.allclose(score, acts[LAYER][:, 4].mean())


def test_channel_works_on_non_spatial_layers() -> None:
    acts = _activations()
    _close(channel("logits", 7)(acts, _images()), acts["logits"][:, 7].mean())


@pytest.mark.parametrize(("height", "width"), [(5, 5), (4, 6), (5, 6)])
def test_neuron_defaults_to_the_centre(height: int, width: int) -> None:
    act = torch.zeros(2, 4, height, width)
    act[0, 2, height // 2, width // 2] = 3.0
    act[1, 2, height // 2, width // 2] = 5.0
    act[:, 1, height // 2, width // 2] = 100.0  # another channel: must not leak in
    assert neuron("a", 2)({"a": act}, _images()).item() == pytest.approx(4.0)


def test_neuron_x_is_column_and_y_is_row() -> None:
    act = torch.zeros(1, 2, 5, 7)
    act[0, 1, 3, 6] = 2.0  # row 3, column 6
    assert neuron("a", 1, x=6, y=3)({"a": act}, _images()).item() == 2.0
    assert neuron("a", 1, x=3, y=4)({"a": act}, _images()).item() == 0.0


def test_neuron_position_outside_layer_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"x=7.*x in 0\.\.6"):
        neuron("a", 0, x=7)({"a": torch.zeros(1, 2, 5, 7)}, _images())


def test_neuron_on_non_spatial_layer_is_a_user_error() -> None:
    with pytest.raises(UserError, match="spatial"):
        neuron("logits", 0)(_activations(), _images())


def test_deepdream_is_mean_square() -> None:
    acts = _activations()
    _close(deepdream(LAYER)(acts, _images()), (acts[LAYER] ** 2).mean())


def test_class_logit_is_mean_logit_of_that_class() -> None:
    acts = _activations()
    _close(class_logit(3)(acts, _images()), acts["logits"][:, 3].mean())
    assert class_logit(3).layers == frozenset({"logits"})


def test_direction_is_mean_dot_product() -> None:
    acts = _activations()
    vector = [0.5, -1.0, 2.0, 0.0, 0.25, 1.5, -0.75, 3.0]
    act = acts[LAYER]
    expected = sum(vector[c] * act[:, c] for c in range(8)).mean()  # manual per-channel sum
    _close(direction(LAYER, vector)(acts, _images()), expected)


def test_direction_accepts_a_tensor_and_non_spatial_layers() -> None:
    acts = _activations()
    vector = torch.linspace(-1, 1, 10)
    expected = (acts["logits"] @ vector).mean()
    _close(direction("logits", vector)(acts, _images()), expected)


def test_direction_length_mismatch_at_call_time_is_a_user_error() -> None:
    with pytest.raises(UserError, match="3 values"):
        direction(LAYER, [1.0, 2.0, 3.0])(_activations(), _images())


def test_diversity_of_identical_elements_is_minus_one() -> None:
    one = torch.randn(1, 4, 3, 3)
    score = diversity("a")({"a": one.repeat(3, 1, 1, 1)}, _images())
    _close(score, -1.0)


def test_diversity_of_batch_of_one_is_zero_and_differentiable() -> None:
    act = torch.randn(1, 4, 3, 3, requires_grad=True)
    score = diversity("a")({"a": act}, _images())
    assert score.item() == 0.0
    (grad,) = torch.autograd.grad(score, act)
    assert torch.count_nonzero(grad) == 0


def test_diversity_of_disjoint_channels_is_zero() -> None:
    # Elements active in different channels have Gram matrices with disjoint support: cosine 0.
    act = torch.zeros(2, 4, 3, 3)
    act[0, :2] = torch.rand(2, 3, 3) + 0.1
    act[1, 2:] = torch.rand(2, 3, 3) + 0.1
    _close(diversity("a")({"a": act}, _images()), 0.0)


def test_diversity_is_mean_over_pairs() -> None:
    # Two identical elements and one disjoint one: pairs (0,1) similar, the other 4 of 6 ordered
    # pairs orthogonal, so the mean is -2/6.
    base = torch.zeros(1, 4, 2, 2)
    base[0, :2] = 1.0
    other = torch.zeros(1, 4, 2, 2)
    other[0, 2:] = 1.0
    act = torch.cat([base, base, other])
    _close(diversity("a")({"a": act}, _images()), -1.0 / 3.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 5), scale=st.floats(0.01, 100.0))
def test_diversity_is_bounded_and_scale_invariant(seed: int, batch: int, scale: float) -> None:
    act = torch.randn(batch, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    score = diversity("a")({"a": act}, _images())
    assert -1.0 - 1e-5 <= score.item() <= 1.0 + 1e-5
    _close(diversity("a")({"a": act * scale}, _images()), score.item())


def test_diversity_is_float32_for_half_activations() -> None:
    # Gram entries overflow float16; the score is computed in float32.
    act = torch.full((2, 4, 32, 32), 200.0, dtype=torch.float16)
    score = diversity("a")({"a": act}, _images())
    assert score.dtype == torch.float32
    assert math.isfinite(score.item())


# --- penalties -----------------------------------------------------------------------------------


def test_penalties_score_a_noisy_image_below_a_flat_one() -> None:
    flat = torch.full((2, 3, 16, 16), 0.5)
    noisy = flat + 0.3 * torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for penalty in (total_variation(), l2(), l1(0.5)):
        assert penalty({}, noisy).item() < penalty({}, flat).item(), penalty
    assert total_variation()({}, flat).item() == 0.0
    assert l2()({}, flat).item() == 0.0


def test_penalty_values() -> None:
    images = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    # Vertical diffs: (1, 0) -> mean 0.5; horizontal diffs: (1, 0) -> mean 0.5.
    _close(total_variation()({}, images), -1.0)
    _close(l1()({}, images), -0.75)
    _close(l1(1.0)({}, images), -0.25)
    _close(l2()({}, images), -0.25)
    _close(l2(0.0)({}, images), -0.75)


def test_total_variation_does_not_depend_on_tile_size() -> None:
    def checkerboard(size: int) -> torch.Tensor:
        index = torch.arange(size)
        return ((index[:, None] + index[None, :]) % 2).float().expand(1, 3, size, size)

    _close(total_variation()({}, checkerboard(8)), -2.0)
    _close(total_variation()({}, checkerboard(64)), -2.0)


def test_total_variation_of_a_one_pixel_high_image_is_finite() -> None:
    images = torch.tensor([[[[0.0, 1.0, 0.0]]]])
    _close(total_variation()({}, images), -1.0)


def test_penalties_need_no_layers() -> None:
    for penalty in (total_variation(), l1(), l2()):
        assert penalty.layers == frozenset()
        penalty.validate({})


# --- composition ---------------------------------------------------------------------------------


def test_composition_values_and_layers() -> None:
    acts, images = _activations(), _images()
    a, b, c = channel(LAYER, 1), deepdream("blocks.4"), total_variation()
    combined = 2 * a - b / 4 + 0.5 * c
    expected = 2 * a(acts, images) - b(acts, images) / 4 + 0.5 * c(acts, images)
    _close(combined(acts, images), expected)
    assert combined.layers == frozenset({LAYER, "blocks.4"})
    assert isinstance(combined, WeightedSum)


def test_builtin_sum_and_zero() -> None:
    acts, images = _activations(), _images()
    terms = [channel(LAYER, 0), class_logit(2), l2()]
    total = sum(terms)
    assert isinstance(total, Objective)
    _close(total(acts, images), sum(t(acts, images) for t in terms))
    assert total.layers == frozenset({LAYER, "logits"})
    a = terms[0]
    assert 0 + a is a
    assert a + 0 is a
    assert a - 0 is a


def test_negation_and_flattening() -> None:
    a, b, c = channel(LAYER, 1), channel(LAYER, 2), l1()
    negated = -a
    assert -negated is a
    assert +a is a
    nested = a - (b + 2 * (c - a))
    assert [w for w, _ in nested.terms()] == [1.0, -1.0, -2.0, 2.0]
    assert all(not isinstance(t, WeightedSum) for _, t in nested.terms())
    acts, images = _activations(), _images()
    expected = a(acts, images) - b(acts, images) - 2 * (c(acts, images) - a(acts, images))
    _close(nested(acts, images), expected)


@settings(max_examples=30, deadline=None)
@given(
    wa=st.floats(-10, 10, allow_nan=False),
    wb=st.floats(-10, 10, allow_nan=False),
    divisor=st.floats(0.1, 10),
    seed=st.integers(0, 2**16),
)
def test_composition_is_linear(wa: float, wb: float, divisor: float, seed: int) -> None:
    acts, images = _activations(seed), _images(seed)
    a, b = direction(LAYER, [1.0] * 8), total_variation()
    combined = (wa * a + b * wb) / divisor
    expected = (wa * a(acts, images) + wb * b(acts, images)) / divisor
    torch.testing.assert_close(combined(acts, images), expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a * a,
        lambda a: a + 1,
        lambda a: 1 - a,
        lambda a: "2" * a,
        lambda a: True * a,
        lambda a: a / a,
    ],
)
def test_nonlinear_or_invalid_operands_raise_type_error(
    make: Callable[[Objective], object],
) -> None:
    with pytest.raises(TypeError):
        make(channel(LAYER, 0))


def test_bad_scalars() -> None:
    with pytest.raises(ZeroDivisionError):
        channel(LAYER, 0) / 0
    with pytest.raises(UserError, match="finite"):
        float("nan") * channel(LAYER, 0)


def test_repr() -> None:
    a = channel(LAYER, 5)
    assert repr(a - 0.1 * total_variation()) == "channel(blocks.3, 5) - 0.1 * total_variation()"
    assert repr(-a + l1() + 3 * l2(0.2)) == "-channel(blocks.3, 5) + l1() + 3 * l2(0.2)"
    assert repr(-2 * a) == "-2 * channel(blocks.3, 5)"
    assert repr(neuron("b", 1)) == "neuron(b, 1)"
    assert repr(neuron("b", 1, x=2, y=3)) == "neuron(b, 1, x=2, y=3)"
    assert repr(deepdream("b")) == "deepdream(b)"
    assert repr(class_logit(281)) == "class_logit(281)"
    assert repr(diversity("b")) == "diversity(b)"
    assert repr(direction("b", [1, 0.5])) == "direction(b, [1, 0.5])"
    assert repr(direction("b", [1.0] * 512)) == "direction(b, [1, 1, 1, ... (512 values)])"
    assert repr(l2()) == "l2()"
    assert repr(l1(0.25)) == "l1(0.25)"


def test_equality_hash_pickle_and_immutability() -> None:
    objective = channel(LAYER, 5) - 0.1 * total_variation() + direction("b", [1, 2])
    assert objective == channel(LAYER, 5) - 0.1 * total_variation() + direction("b", [1.0, 2.0])
    assert objective != channel(LAYER, 4) - 0.1 * total_variation() + direction("b", [1, 2])
    for clone in (pickle.loads(pickle.dumps(objective)), copy.deepcopy(objective)):
        assert clone == objective
        assert hash(clone) == hash(objective)
    with pytest.raises(AttributeError):
        channel(LAYER, 5).channel = 6  # type: ignore[misc]


# --- validation ----------------------------------------------------------------------------------


MANY_LAYERS = {f"blocks.{i}": 16 for i in range(30)} | {"conv_head": 1280, "logits": 1000}


def test_unknown_layer_suggests_close_matches() -> None:
    # Thirty-odd layers: the hint must come from difflib, not from listing everything.
    with pytest.raises(UserError, match=r"'conv_haed'.*did you mean: conv_head"):
        channel("conv_haed", 0).validate(MANY_LAYERS)


def test_unknown_layer_without_close_match_lists_some_layers() -> None:
    with pytest.raises(UserError, match=r"valid layers: blocks\.0, .*\(32 in all\)"):
        deepdream("zzzzzz").validate(MANY_LAYERS)
    with pytest.raises(UserError, match="conv_head"):
        deepdream("zzzzzz").validate(CHANNELS)


@pytest.mark.parametrize(
    "objective",
    [channel(LAYER, 8), neuron(LAYER, 8), channel(LAYER, 99)],
    ids=repr,
)
def test_channel_out_of_range(objective: Objective) -> None:
    with pytest.raises(UserError, match=r"blocks\.3.*8 channels.*0\.\.7"):
        objective.validate(CHANNELS)


def test_valid_objectives_pass_validation() -> None:
    objective = (
        channel(LAYER, 7)
        + neuron("blocks.4", 15, x=100)  # positions are checked when scored, not here
        + deepdream("conv_head")
        + class_logit(9)
        + direction(LAYER, [1.0] * 8)
        + diversity("blocks.2")
        + total_variation()
    )
    objective.validate(CHANNELS)


def test_class_index_out_of_range() -> None:
    with pytest.raises(UserError, match=r"class_index 10.*logits.*10 classes.*0\.\.9"):
        class_logit(10).validate(CHANNELS)


def test_class_logit_needs_logits() -> None:
    with pytest.raises(UserError, match="'logits'"):
        class_logit(0).validate({LAYER: 8})


def test_direction_length_must_match_channels() -> None:
    with pytest.raises(UserError, match=r"3 values.*8 channels"):
        direction(LAYER, [1.0, 2.0, 3.0]).validate(CHANNELS)


def test_composite_validates_every_term() -> None:
    with pytest.raises(UserError, match="class_index 42"):
        (channel(LAYER, 0) + l1() - class_logit(42)).validate(CHANNELS)


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: channel(LAYER, -1), "non-negative"),
        (lambda: channel(LAYER, 1.5), "non-negative integer"),
        (lambda: channel(LAYER, True), "non-negative integer"),
        (lambda: channel("", 0), "layer"),
        (lambda: channel(3, 0), "layer"),
        (lambda: neuron(LAYER, 0, x=-1), "x"),
        (lambda: class_logit(-3), "class_index"),
        (lambda: direction(LAYER, []), "empty"),
        (lambda: direction(LAYER, [0.0, 0.0]), "zeros"),
        (lambda: direction(LAYER, [1.0, float("inf")]), r"vector\[1\]"),
        (lambda: direction(LAYER, "1,2"), "sequence"),
        (lambda: direction(LAYER, torch.ones(2, 2)), "1-D"),
        (lambda: l1(float("nan")), "constant"),
        (lambda: l2("grey"), "constant"),
    ],
)
def test_bad_factory_arguments(make: Callable[[], object], pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        make()


def test_missing_activation_is_a_key_error_naming_the_layer() -> None:
    with pytest.raises(KeyError, match="conv_head"):
        deepdream("conv_head")(_activations(), _images())


# --- gradients -----------------------------------------------------------------------------------

ALL_OBJECTIVES = [
    channel(LAYER, 2),
    neuron(LAYER, 3),
    deepdream(LAYER),
    class_logit(4),
    direction(LAYER, [float(i) - 3.5 for i in range(8)]),
    diversity(LAYER),
    total_variation(),
    l1(),
    l2(),
    channel(LAYER, 1) - 0.1 * total_variation() + 0.5 * diversity(LAYER),
]


@pytest.mark.parametrize("objective", ALL_OBJECTIVES, ids=repr)
def test_gradients_flow_and_inputs_are_untouched(objective: Objective) -> None:
    acts = {name: t.clone().requires_grad_() for name, t in _activations().items()}
    images = _images().requires_grad_()
    before = {name: (t.detach().clone(), t._version) for name, t in acts.items()}
    image_version = images._version

    score = objective(acts, images)
    assert score.ndim == 0
    inputs = [acts[name] for name in sorted(objective.layers)] + [images]
    grads = torch.autograd.grad(score, inputs, allow_unused=True)
    used = [g for g in grads if g is not None and torch.count_nonzero(g) > 0]
    assert used, "no gradient reached any input"
    # Layers it reads get a gradient; penalties give the images one.
    for name, grad in zip(sorted(objective.layers), grads, strict=False):
        assert grad is not None and torch.count_nonzero(grad) > 0, name
    # No in-place ops on inputs: values and version counters unchanged.
    for name, t in acts.items():
        torch.testing.assert_close(t.detach(), before[name][0])
        assert t._version == before[name][1], name
    assert images._version == image_version


def test_penalty_gradient_reaches_images() -> None:
    images = _images().requires_grad_()
    (grad,) = torch.autograd.grad((total_variation() + l1() + l2())({}, images), images)
    assert torch.count_nonzero(grad) > 0


# --- configs (Hydra) -----------------------------------------------------------------------------


def _target(name: str, **kwargs: object) -> dict[str, object]:
    return {"_target_": f"render.objectives.{name}", **kwargs}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (_target("channel", layer=LAYER, channel=5), channel(LAYER, 5)),
        (_target("neuron", layer=LAYER, channel=5, x=1, y=2), neuron(LAYER, 5, x=1, y=2)),
        (_target("deepdream", layer=LAYER), deepdream(LAYER)),
        (_target("class_logit", class_index=281), class_logit(281)),
        (_target("direction", layer=LAYER, vector=[1.0, -2.0]), direction(LAYER, [1.0, -2.0])),
        (_target("diversity", layer=LAYER), diversity(LAYER)),
        (_target("total_variation"), total_variation()),
        (_target("l1", constant=0.5), l1(0.5)),
        (_target("l2"), l2()),
    ],
    ids=lambda value: str(value.get("_target_")) if isinstance(value, dict) else repr(value),
)
def test_every_factory_is_hydra_instantiable(config: dict, expected: Objective) -> None:
    assert instantiate(OmegaConf.create(config)) == expected


def test_weighted_sum_from_nested_hydra_config() -> None:
    config = OmegaConf.create(
        _target(
            "weighted_sum",
            terms=[
                {"objective": _target("channel", layer=LAYER, channel=5)},
                {"objective": _target("total_variation"), "weight": 0.05},
                {"objective": _target("diversity", layer="blocks.4"), "weight": -2},
            ],
        )
    )
    objective = instantiate(config)
    expected = channel(LAYER, 5) + 0.05 * total_variation() - 2 * diversity("blocks.4")
    assert objective == expected
    assert objective.layers == frozenset({LAYER, "blocks.4"})
    acts, images = _activations(), _images()
    _close(objective(acts, images), expected(acts, images))


def test_weighted_sum_of_one_unit_term_is_that_term() -> None:
    assert weighted_sum([{"objective": l2()}]) == l2()
    assert weighted_sum([l2(), {"objective": l1(), "weight": 2.0}]) == l2() + 2 * l1()


@pytest.mark.parametrize(
    ("terms", "pattern"),
    [
        ([], "empty"),
        ({"objective": l1()}, "list"),
        ([{"weight": 1.0}], "no 'objective'"),
        ([{"objective": l1(), "wieght": 1.0}], "did you mean 'weight'"),
        ([{"objective": {"layer": LAYER}}], "_target_"),
        ([{"objective": l1(), "weight": float("nan")}], "weight"),
        ([{"objective": l1(), "weight": "heavy"}], "weight"),
        (["channel"], r"terms\[0\]"),
    ],
)
def test_weighted_sum_rejects_bad_terms(terms: object, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        weighted_sum(terms)  # type: ignore[arg-type]
