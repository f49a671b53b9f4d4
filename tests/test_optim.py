"""DeepDream's normalised gradient step and the octave starts of a dream."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from render.errors import UserError
from render.optim import NormalizedSGD
from render.run import next_octave_canvas


def test_each_tile_moves_by_lr_on_average():
    param = torch.nn.Parameter(torch.zeros(2, 3, 4, 4))
    grad = torch.randn(2, 3, 4, 4)
    grad[1] *= 1000  # another tile's gradient is much larger: its step is not
    param.grad = grad.clone()
    NormalizedSGD([param], lr=0.1).step()
    # The renderer minimises -score, so the step goes against the gradient, like SGD.
    for row in range(2):
        expected = -0.1 * grad[row] / grad[row].abs().mean()
        assert torch.allclose(param[row], expected, rtol=1e-5, atol=1e-7)
        assert param[row].abs().mean().item() == pytest.approx(0.1, rel=1e-4)


def test_a_zero_gradient_stays_put_and_no_state_is_kept():
    param = torch.nn.Parameter(torch.ones(1, 5))
    param.grad = torch.zeros(1, 5)
    optimizer = NormalizedSGD([param], lr=0.5)
    optimizer.step()
    assert torch.equal(param.detach(), torch.ones(1, 5))
    assert not optimizer.state
    with pytest.raises(UserError, match=r"optim\.lr"):
        NormalizedSGD([param], lr=0)


def test_next_octave_is_the_upsampled_canvas_or_the_photo_plus_the_detail():
    torch.manual_seed(0)
    canvas = torch.rand(1, 3, 20, 20)
    up = next_octave_canvas(canvas, (28, 28))
    bicubic = {"interpolation": InterpolationMode.BICUBIC, "antialias": True}
    # Row by row (render/shards.py): torch's resize up to float32 rounding.
    close = {"atol": 1e-5, "rtol": 0}
    torch.testing.assert_close(up, TF.resize(canvas, [28, 28], **bicubic).clamp(0, 1), **close)
    photo, next_photo = torch.full((1, 3, 20, 20), 0.5), torch.full((1, 3, 28, 28), 0.25)
    dreamed = photo + 0.1 * torch.randn(1, 3, 20, 20)
    start = next_octave_canvas(dreamed, (28, 28), photo, next_photo)
    detail = TF.resize(dreamed - photo, [28, 28], **bicubic)
    torch.testing.assert_close(start, (next_photo + detail).clamp(0, 1), **close)
    # Headroom keeps every pixel off the sigmoid's flat ends.
    saturated = torch.cat([torch.zeros(1, 3, 20, 10), torch.ones(1, 3, 20, 10)], dim=3)
    room = next_octave_canvas(saturated, (20, 20), headroom=0.1)
    assert room.min().item() == pytest.approx(0.1) and room.max().item() == pytest.approx(0.9)
    with pytest.raises(UserError, match="octave_headroom"):
        next_octave_canvas(canvas, (28, 28), headroom=0.5)
