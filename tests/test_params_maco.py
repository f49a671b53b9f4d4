"""param=maco: MaCo's phase-only Fourier parameterisation under a fixed magnitude."""

from __future__ import annotations

import csv
import math
import sys

import numpy as np
import pytest
import torch
from conftest import (
    DDP,
    TINY,
    assert_a_picture,
    kill_two_ranks_in_octave2,
    load_script,
    run_render,
    tiledream,
)
from PIL import Image

from render.errors import UserError
from render.params import EPS, MacoParam, color_correlation_inverse
from render.params.color import mix_channels
from render.params.maco import SHIPPED_SPECTRUM, load_spectrum, resize_spectrum

SIZES = [(8, 8), (7, 12), (13, 5), (16, 9)]


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _presigmoid(codec: MacoParam, params: torch.Tensor) -> torch.Tensor:
    """The tile before the colour mix and sigmoid, from its decoded pixels (float64)."""
    rgb = codec.decode(params.double())
    return mix_channels(torch.logit(rgb), color_correlation_inverse())


def _real_bins(h: int, w: int) -> torch.Tensor:
    """The rfft2 bins of an ``h`` x ``w`` real image that are their own mirror (held as reals)."""
    rows = torch.zeros(h, dtype=torch.bool)
    rows[0] = True
    rows[h // 2] = h % 2 == 0 or h == 1
    columns = torch.zeros(w // 2 + 1, dtype=torch.bool)
    columns[0] = True
    columns[-1] = columns[-1] or w % 2 == 0
    return rows[:, None] & columns[None, :]


def test_shipped_spectrum_loads_and_is_small() -> None:
    assert SHIPPED_SPECTRUM.stat().st_size < 400_000
    magnitude, size = load_spectrum()
    assert magnitude.shape == (3, size[0], size[1] // 2 + 1)
    assert torch.isfinite(magnitude).all() and (magnitude > 0).all()
    # A natural spectrum: the low frequencies carry far more than the high ones.
    assert (magnitude[:, 1, 1] > 10 * magnitude[:, size[0] // 2, size[1] // 4]).all()


@pytest.mark.parametrize("size", SIZES)
def test_decode_shape_and_range(size: tuple[int, int]) -> None:
    codec = MacoParam(size)
    assert codec.param_shape == (3, size[0], size[1] // 2 + 1)
    out = codec.decode(codec.init(4, _seeded(0)))
    assert out.shape == (4, 3, *size) and out.dtype == torch.float32
    assert (out > 0).all() and (out < 1).all()


@pytest.mark.parametrize("size", SIZES)
def test_a_decoded_tile_has_the_fixed_magnitude(size: tuple[int, int]) -> None:
    codec = MacoParam(size)
    params = codec.init(3, _seeded(1)).double()
    spectrum = torch.fft.rfft2(_presigmoid(codec, params), norm="ortho")
    magnitude = codec._constants["magnitude"]
    real = _real_bins(*size)
    assert torch.allclose(spectrum.abs()[..., ~real], magnitude.expand(3, -1, -1, -1)[..., ~real])
    # The bins held as reals are M * cos(phase): within the magnitude.
    held = spectrum.real[..., real]
    assert torch.allclose(held, (magnitude * torch.cos(params))[..., real], atol=1e-9)
    # And the contrast (about each channel's mean) is image_std.
    z = _presigmoid(codec, params)
    deviation = (z - z.mean((-2, -1), keepdim=True)).square().mean((1, 2, 3)).sqrt()
    assert torch.allclose(deviation, torch.ones(3, dtype=torch.float64), rtol=0.05)


@pytest.mark.parametrize("size", SIZES)
def test_encode_of_decode_gives_the_phase_back(size: tuple[int, int]) -> None:
    codec = MacoParam(size)
    params = codec.init(3, _seeded(2)).double()
    again = codec.encode(codec.decode(params))
    real = _real_bins(*size)
    # Where a real image's phase is odd in ky (columns 0 and w/2), decode keeps the odd part.
    h = size[0]
    mirror = -torch.arange(h) % h
    odd = (params - params[..., mirror, :]) / 2
    hermitian = torch.zeros(size[1] // 2 + 1, dtype=torch.bool)
    hermitian[0] = True
    hermitian[-1] = hermitian[-1] or size[1] % 2 == 0
    expected = torch.where(hermitian, odd, params)
    free = ~real
    # Up to 2 pi: compare points on the circle.
    assert torch.allclose(torch.cos(again)[..., free], torch.cos(expected)[..., free], atol=1e-6)
    assert torch.allclose(torch.sin(again)[..., free], torch.sin(expected)[..., free], atol=1e-6)
    # The bins held as reals act through their cosine only.
    assert torch.allclose(torch.cos(again)[..., real], torch.cos(params)[..., real], atol=1e-6)
    assert torch.allclose(codec.decode(again), codec.decode(params), atol=1e-9)


def test_decode_of_encode_keeps_a_photos_phase_not_its_magnitude() -> None:
    codec = MacoParam((16, 16))
    x = EPS + (1 - 2 * EPS) * torch.rand(1, 3, 16, 16, generator=_seeded(3), dtype=torch.float64)
    z = mix_channels(torch.logit(x), color_correlation_inverse())
    back = codec.decode(codec.encode(x))
    out = mix_channels(torch.logit(back), color_correlation_inverse())
    before, after = torch.fft.rfft2(z, norm="ortho"), torch.fft.rfft2(out, norm="ortho")
    free = ~_real_bins(16, 16)
    turn = after[..., free] * before[..., free].conj()
    assert torch.allclose(turn.imag, torch.zeros_like(turn.imag), atol=1e-9)
    assert (turn.real > 0).all()  # the same phase
    assert not torch.allclose(after.abs(), before.abs())  # the magnitude is the fixed one


def test_gradient_flows_to_the_phase_only() -> None:
    codec = MacoParam((12, 10))
    phase = codec.init(2, _seeded(4)).requires_grad_()
    codec.decode(phase)[:, 0].mean().backward()
    assert phase.grad is not None and phase.grad.abs().sum() > 0
    # The magnitude is a constant of the codec, not a parameter.
    assert list(codec.parameters()) == []


def test_a_tile_decodes_the_same_alone_and_in_a_batch() -> None:
    codec = MacoParam((16, 16))
    params = codec.init(4, _seeded(5))
    assert torch.allclose(codec.decode(params)[2:3], codec.decode(params[2:3]), atol=1e-6)


def test_resizing_reads_the_spectrum_at_the_same_frequencies() -> None:
    magnitude, size = load_spectrum()
    same = resize_spectrum(magnitude, size, size)
    assert torch.allclose(same, magnitude)
    half = resize_spectrum(magnitude, size, (size[0] // 2, size[1] // 2))
    # Bin k of the half size is the frequency of bin 2k of the reference (the DC: the same mean).
    assert torch.allclose(half[:, 3, 5], magnitude[:, 6, 10])
    assert torch.allclose(half[:, -3, 5], magnitude[:, -6, 10])
    assert torch.allclose(half[:, 0, 0], magnitude[:, 0, 0] / 2)


def test_bad_settings_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match=r"nothere\.pt"):
        MacoParam((8, 8), spectrum=str(tmp_path / "nothere.pt"))
    (tmp_path / "bad.pt").write_text("not a spectrum")
    with pytest.raises(UserError, match="not a spectrum file"):
        MacoParam((8, 8), spectrum=str(tmp_path / "bad.pt"))
    with pytest.raises(UserError, match="image_std"):
        MacoParam((8, 8), image_std=0)


def test_the_script_makes_a_spectrum_from_a_folder(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    g = _seeded(6)
    for name in ("a.png", "b.jpg"):
        pixels = (torch.rand(40, 50, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / name)
    out = tmp_path / "spectrum.pt"
    script = load_script("maco_spectrum")
    argv = ["maco_spectrum.py", str(folder), "--out", str(out), "--size", "16", "--crops", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    magnitude, size = load_spectrum(out)
    assert size == (16, 16) and magnitude.shape == (3, 16, 9)
    assert torch.load(out, weights_only=True)["sources"] == ["a.png", "b.jpg"]
    # Uniform noise: a flat spectrum away from the DC (grey is the zero).
    flat = magnitude.flatten(1)[:, 1:]
    assert (flat.std(1) / flat.mean(1) < 0.6).all()
    codec = MacoParam((8, 8), spectrum=str(out))
    assert codec.decode(codec.init(1, _seeded(0))).shape == (1, 3, 8, 8)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(sys, "argv", ["maco_spectrum.py", str(empty), "--out", str(out)])
    with pytest.raises(SystemExit, match=r"^error: .*holds no picture"):
        script.main()


def _objective(run_dir, octave: str) -> list[float]:
    rows = csv.DictReader((run_dir / "metrics" / octave / "metrics.csv").open())
    return [float(r["objective"]) for r in rows if r.get("objective")]


@pytest.mark.slow
def test_a_maco_pyramid_renders_from_the_command_line(tmp_path) -> None:
    overrides = [o for o in TINY if not o.startswith("trainer.max_steps")]
    tiledream(
        *overrides,
        "experiment=maco",
        "render.octaves=2",
        "render.updates_per_tile=6",
        f"hydra.run.dir={tmp_path}",
    )
    assert_a_picture(tmp_path / "render.png", (112, 112))
    first = _objective(tmp_path, "octave1")
    assert max(first[-2:]) > first[0] + 1
    # The second octave starts from the first one's canvas re-encoded through its phase: what
    # octave 1 made survives (measured: -0.8 -> 7.2, then 3.3 -> 6.2).
    second = _objective(tmp_path, "octave2")
    assert second[0] > first[0] + 1
    assert max(second[-2:]) > second[0]


# Two octaves (64 then 160) of a spatial objective (goldfish on the left, bees on the right),
# MaCo with NAdam, a checkpoint every 4 steps.
SPATIAL = [
    "experiment=maco",
    "objective=interpolate",
    "objective.start.class_index=1",
    "objective.end.class_index=309",
    "tiling.base_size=[160,160]",
    "tiling.tile_size=[64,64]",
    "render.tiles_per_step=2",
    "render.blend_every=1",
    "render.octaves=2",
    # Updates per tile, not trainer.max_steps: every tile takes as many on any number of ranks.
    "render.updates_per_tile=4",
    "trainer.accelerator=cpu",
    "checkpoint.every_n_steps=4",
]


@pytest.mark.slow
def test_maco_renders_a_spatial_objective_on_two_processes_and_resumes(tmp_path) -> None:
    pictures = {}
    for name, extra in (("one", []), ("two", DDP)):
        run = run_render if extra else tiledream  # more ranks need a process of their own
        run(*SPATIAL, *extra, f"hydra.run.dir={tmp_path / name}")
        with Image.open(tmp_path / name / "render.png") as png:
            pictures[name] = torch.from_numpy(np.array(png.convert("RGB"))).double()
    mse = (pictures["one"] - pictures["two"]).square().mean().item()
    assert 10 * math.log10(255**2 / max(mse, 1e-12)) > 40  # the same picture on two processes
    assert pictures["one"].std() > 8  # a picture, not a flat canvas

    run_dir = tmp_path / "killed"
    kill_two_ranks_in_octave2(run_dir, *SPATIAL, *DDP)
    # NAdam's per-tile state (its moments and momentum product) comes back with the phases.
    run_render(*SPATIAL, *DDP, "resume=true", f"hydra.run.dir={run_dir}")
    assert (run_dir / "render.png").read_bytes() == (tmp_path / "two" / "render.png").read_bytes()


@pytest.mark.slow
def test_maco_renders_every_objective(tmp_path) -> None:
    shrink = ["tiling.tile_size=[64,64]", "tiling.base_size=[96,96]", "trainer.max_steps=2"]
    maco = ["param=maco", "optim=nadam", "optim.lr=0.5", "trainer.accelerator=cpu", *shrink]
    objectives = "objective=channel,deepdream,class_logit,interpolate,atlas"
    tiledream("-m", objectives, *maco, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    tiledream("experiment=mask_wave", *maco, f"hydra.run.dir={tmp_path / 'mask'}")
    pictures = [*sorted(tmp_path.glob("sweep/*/render.png")), tmp_path / "mask" / "render.png"]
    assert len(pictures) == 6
    for path in pictures:
        assert_a_picture(path, (96, 96))
