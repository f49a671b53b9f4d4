"""Tests for the image parameterisations (render.params)."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate
from hypothesis import given, settings
from hypothesis import strategies as st

from render.errors import UserError
from render.params import (
    EPS,
    IMAGENET_COLOR_CORRELATION_SQRT,
    FourierParam,
    Parameterization,
    PixelParam,
    color_correlation_inverse,
    color_correlation_matrix,
    spectrum_scale,
)

CLASSES = [PixelParam, FourierParam]
sizes = st.integers(min_value=1, max_value=40)


def _images(n: int, h: int, w: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random images with every pixel in [EPS, 1 - EPS]."""
    g = torch.Generator().manual_seed(seed)
    return EPS + (1 - 2 * EPS) * torch.rand(n, 3, h, w, generator=g, dtype=dtype)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- colour decorrelation ------------------------------------------------------------------


def test_color_matrix_is_lucid_normalised_sqrt() -> None:
    c = color_correlation_matrix()
    raw = torch.tensor(IMAGENET_COLOR_CORRELATION_SQRT, dtype=torch.float64)
    norms = torch.linalg.vector_norm(raw, dim=0)
    assert torch.allclose(c, raw / norms.max())
    assert torch.linalg.vector_norm(c, dim=0).max().item() == pytest.approx(1.0)
    assert c[0, 0].item() == pytest.approx(0.26 / math.sqrt(0.26**2 + 0.27**2 + 0.27**2))


def test_color_inverse_is_exact() -> None:
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(color_correlation_matrix() @ color_correlation_inverse(), eye, atol=1e-12)
    assert torch.allclose(color_correlation_inverse() @ color_correlation_matrix(), eye, atol=1e-12)


def test_decorrelation_mixes_channels_as_t_times_c_transposed() -> None:
    p = PixelParam((2, 3))
    params = torch.randn(1, 3, 2, 3, generator=_seeded(0))
    c = color_correlation_matrix().float()
    expected = torch.sigmoid((params.permute(0, 2, 3, 1) @ c.T).permute(0, 3, 1, 2))
    assert torch.allclose(p.decode(params), expected, atol=1e-6)


def test_decorrelate_false_is_plain_sigmoid() -> None:
    p = PixelParam((4, 5), decorrelate=False)
    params = torch.randn(2, 3, 4, 5, generator=_seeded(1))
    assert torch.allclose(p.decode(params), torch.sigmoid(params))


# -- exact inverse -------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(h=sizes, w=sizes, fourier=st.booleans(), decay=st.sampled_from([0.0, 1.0, 1.7]))
def test_decode_inverts_encode(h: int, w: int, fourier: bool, decay: float) -> None:
    codec = FourierParam((h, w), decay=decay) if fourier else PixelParam((h, w))
    x = _images(2, h, w, seed=h * 100 + w)
    params = codec.encode(x)
    assert params.shape == (2, *codec.param_shape)
    assert params.dtype == torch.float32
    assert torch.allclose(codec.decode(params), x, atol=1e-5, rtol=0)


@settings(max_examples=20, deadline=None)
@given(h=sizes, w=sizes, fourier=st.booleans())
def test_inverse_is_exact_in_float64(h: int, w: int, fourier: bool) -> None:
    codec = FourierParam((h, w)) if fourier else PixelParam((h, w))
    x = _images(2, h, w, seed=7, dtype=torch.float64)
    params = codec.encode(x)
    assert params.dtype == torch.float64
    out = codec.decode(params)
    assert out.dtype == torch.float64
    assert torch.allclose(out, x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("size", [(8, 8), (7, 12), (13, 5)])
def test_encode_of_decode_gives_the_same_image(cls: type[Parameterization], size) -> None:
    codec = cls(size, init_std=0.05)
    params = codec.init(3, _seeded(2))
    image = codec.decode(params)
    again = codec.encode(image)
    assert torch.allclose(codec.decode(again), image, atol=1e-6)
    # A second round trip is a fixed point in parameter space too.
    assert torch.allclose(codec.encode(codec.decode(again)), again, atol=1e-4)


def test_pixel_encode_of_decode_returns_the_params() -> None:
    codec = PixelParam((6, 9))
    params = torch.randn(2, 3, 6, 9, generator=_seeded(3))
    assert torch.allclose(codec.encode(codec.decode(params)), params, atol=1e-4)


def test_encode_clamps_to_eps() -> None:
    codec = FourierParam((6, 7))
    x = torch.zeros(1, 3, 6, 7)
    x[..., 3:] = 1.0
    params = codec.encode(x)
    assert torch.isfinite(params).all()
    expected = x.clamp(EPS, 1 - EPS)
    assert torch.allclose(codec.decode(params), expected, atol=1e-6)


# -- decode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_decode_shape_and_range(cls: type[Parameterization]) -> None:
    codec = cls((10, 14))
    out = codec.decode(codec.init(4, _seeded(0)))
    assert out.shape == (4, 3, 10, 14)
    assert out.dtype == torch.float32
    assert (out > 0).all() and (out < 1).all()
    # Near grey at init, as in Lucid.
    assert (out - 0.5).abs().max() < 0.1
    wild = cls((10, 14), init_std=100.0)
    out = wild.decode(wild.init(2, _seeded(1)))
    assert (out >= 0).all() and (out <= 1).all()


@pytest.mark.parametrize("cls", CLASSES)
def test_decode_handles_float64_params(cls: type[Parameterization]) -> None:
    codec = cls((5, 6))
    params = codec.init(2, _seeded(0))
    out64 = codec.decode(params.double())
    assert out64.dtype == torch.float64
    assert torch.allclose(out64.float(), codec.decode(params), atol=1e-6)
    # The cached float32 constants still work after a float64 call.
    assert codec.decode(params).dtype == torch.float32


@pytest.mark.parametrize("cls", CLASSES)
def test_decode_rows_are_independent_of_the_batch(cls: type[Parameterization]) -> None:
    codec = cls((9, 11))
    params = codec.init(5, _seeded(4)) * 20
    full = codec.decode(params)
    subset = params[[3, 1]]
    assert torch.allclose(codec.decode(subset), full[[3, 1]], atol=1e-6)
    # Strided rows (not contiguous) decode the same.
    assert torch.allclose(codec.decode(params[::2]), full[::2], atol=1e-6)


@pytest.mark.parametrize("cls", CLASSES)
def test_gradient_flows_and_matches_finite_differences(cls: type[Parameterization]) -> None:
    codec = cls((3, 4))
    params = (codec.init(2, _seeded(5)) * 30).double().requires_grad_(True)
    assert torch.autograd.gradcheck(codec.decode, (params,))
    params32 = codec.init(2, _seeded(5)).requires_grad_(True)
    codec.decode(params32).square().sum().backward()
    assert params32.grad is not None and params32.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", CLASSES)
def test_decode_on_cuda_matches_cpu(cls: type[Parameterization]) -> None:
    codec = cls((16, 24))
    params = codec.init(3, _seeded(0))
    gpu = codec.decode(params.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), codec.decode(params), atol=1e-5)
    x = _images(2, 16, 24, 0).cuda()
    assert torch.allclose(codec.decode(codec.encode(x)), x, atol=1e-5)


# -- Fourier specifics -------------------------------------------------------------------


def test_spectrum_scale_values() -> None:
    scale = spectrum_scale(8, 8, 1.0)
    assert scale.shape == (8, 5)
    assert scale[0, 0].item() == pytest.approx(8.0)  # DC: floored at f = 1 / max(H, W)
    assert scale[0, 1].item() == pytest.approx(8.0)  # f = 1/8
    assert scale[0, 2].item() == pytest.approx(4.0)  # f = 1/4
    assert scale[4, 4].item() == pytest.approx(1 / math.sqrt(0.5))  # f = |(1/2, 1/2)|
    assert scale[7, 2].item() == pytest.approx(1 / math.hypot(1 / 8, 1 / 4))  # negative fy
    assert torch.allclose(spectrum_scale(8, 8, 2.0), scale**2)
    assert torch.equal(spectrum_scale(5, 9, 0.0), torch.ones(5, 5, dtype=torch.float64))


def test_fourier_dc_term_gives_flat_image_with_lucid_constants() -> None:
    h, w = 6, 10
    codec = FourierParam((h, w), decorrelate=False)
    params = torch.zeros(1, *codec.param_shape)
    params[0, :, 0, 0, 0] = 0.3
    out = codec.decode(params)
    pre = 0.3 * max(h, w) / math.sqrt(h * w) / 4  # ortho irfft2 of a DC term, Lucid /4
    assert torch.allclose(out, torch.full_like(out, 1 / (1 + math.exp(-pre))), atol=1e-6)


def _band_power_ratio(images: torch.Tensor) -> float:
    """Mean spectral power at |f| < 0.1 (no DC) over that at |f| > 0.3."""
    h, w = images.shape[-2:]
    power = torch.fft.rfft2(images - images.mean(dim=(-2, -1), keepdim=True)).abs().square()
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    f = torch.sqrt(fx**2 + fy**2)
    low = power[..., (f > 0) & (f < 0.1)].mean()
    high = power[..., f > 0.3].mean()
    return (low / high).item()


def test_fourier_init_is_low_frequency_dominated() -> None:
    fourier = FourierParam((64, 64))
    pixel = PixelParam((64, 64))
    fourier_ratio = _band_power_ratio(fourier.decode(fourier.init(4, _seeded(0))))
    pixel_ratio = _band_power_ratio(pixel.decode(pixel.init(4, _seeded(0))))
    assert fourier_ratio > 10  # 1/f amplitude: roughly (0.4 / 0.06) ** 2
    assert 0.5 < pixel_ratio < 2  # white noise: flat spectrum


# -- init ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_init_is_seeded_by_the_generator_only(cls: type[Parameterization]) -> None:
    codec = cls((7, 9), init_std=0.02)
    torch.manual_seed(123)
    a = codec.init(3, _seeded(10))
    torch.manual_seed(456)
    b = codec.init(3, _seeded(10))
    c = codec.init(3, _seeded(11))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (3, *codec.param_shape)
    assert a.dtype == torch.float32 and a.device.type == "cpu"
    assert a.std().item() == pytest.approx(0.02, rel=0.2)
    assert codec.init(0, _seeded(0)).shape == (0, *codec.param_shape)


def test_param_shapes() -> None:
    assert PixelParam((5, 8)).param_shape == (3, 5, 8)
    assert FourierParam((5, 8)).param_shape == (3, 5, 5, 2)
    assert FourierParam((5, 9)).param_shape == (3, 5, 5, 2)
    assert FourierParam(6).tile_size == (6, 6)


# -- configuration -------------------------------------------------------------------------


def test_hydra_instantiate_with_caller_tile_size() -> None:
    cfg = {"_target_": "render.params.FourierParam", "decay": 1.5, "init_std": 0.02}
    codec = instantiate(cfg, tile_size=(8, 12))
    assert isinstance(codec, FourierParam)
    assert codec.tile_size == (8, 12)
    assert codec.decay == 1.5 and codec.init_std == 0.02
    pixel = instantiate({"_target_": "render.params.PixelParam"}, tile_size=[4, 6])
    assert pixel.param_shape == (3, 4, 6)


@pytest.mark.parametrize("tile_size", [(0, 4), (4, -1), (3,), (2, 3, 4), "ab", (2.5, 3), None])
def test_bad_tile_size_raises_user_error(tile_size) -> None:
    with pytest.raises(UserError, match="tile_size"):
        PixelParam(tile_size)


@pytest.mark.parametrize("kwargs", [{"init_std": -1.0}, {"init_std": float("nan")}])
@pytest.mark.parametrize("cls", CLASSES)
def test_bad_init_std_raises_user_error(cls: type[Parameterization], kwargs) -> None:
    with pytest.raises(UserError, match="init_std"):
        cls((4, 4), **kwargs)


@pytest.mark.parametrize("decay", [float("inf"), "1", None])
def test_bad_decay_raises_user_error(decay) -> None:
    with pytest.raises(UserError, match="decay"):
        FourierParam((4, 4), decay=decay)


@pytest.mark.parametrize("cls", CLASSES)
def test_wrong_shapes_raise(cls: type[Parameterization]) -> None:
    codec = cls((4, 5))
    with pytest.raises(ValueError, match="params of shape"):
        codec.decode(torch.zeros(1, 3, 5, 4, 2))
    with pytest.raises(ValueError, match="images of shape"):
        codec.encode(torch.zeros(1, 3, 5, 4))
