"""Transparency maps (output.alpha): the accumulated gradient magnitude, blended like the canvas,
as render_alpha.png and the alpha channel of render.png and render.tif."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import TINY, a_recipe, made_once, tiledream
from omegaconf import OmegaConf
from PIL import Image

from render.alpha import QUANTILE, alpha_scale, magnitude, unscaled
from render.budget import tile_bytes
from render.config import OutputConfig
from render.errors import UserError
from render.outputs import to_uint8
from render.params import PixelParam
from render.pictures import Pictures, write_pictures
from render.recipe import read_recipe
from tiling import TilingModule

CPU = torch.device("cpu")


def _mask(path: Path) -> Path:
    """Red on the left half, blue on the right."""
    pixels = np.zeros((8, 16, 3), np.uint8)
    pixels[:, :8] = (255, 0, 0)
    pixels[:, 8:] = (0, 0, 255)
    Image.fromarray(pixels).save(path)
    return path


CHANNEL = "{_target_:render.objectives.channel,layer:blocks.2.0,channel:3}"
# A channel where the mask is red and nothing (the same channel, weighted 0) where it is blue,
# on two tiles of 64 side by side.
MASKED = [
    "objective=mask",
    f"objective.regions={{red:{CHANNEL},"
    f"blue:{{_target_:render.objectives.weighted_sum,terms:[{{objective:{CHANNEL},weight:0}}]}}}}",
    "tiling.base_size=[64,128]",
    "tiling.tile_size=[64,64]",
    "render.octaves=1",
    "render.tiles_per_step=2",
    "trainer.accelerator=cpu",
    "output.alpha=true",
]


def masked_render(run_dir: Path, *overrides: str) -> None:
    tiledream(
        *MASKED,
        f"objective.path={_mask(run_dir.parent / 'mask.png')}",
        *overrides,
        f"hydra.run.dir={run_dir}",
    )


@pytest.fixture(scope="module")
def masked(request: pytest.FixtureRequest) -> Path:
    """The run folder of a masked render of 8 steps (param=fft), made once."""
    return (
        made_once(
            request,
            "alpha-masked",
            lambda folder: masked_render(folder / "run", "trainer.max_steps=8"),
        )
        / "run"
    )


def alpha_of(path: Path) -> np.ndarray:
    with Image.open(path) as png:
        assert png.mode == "L", png.mode
        return np.asarray(png).astype(float)


def assert_higher_inside(alpha: np.ndarray) -> None:
    """The map is high where the mask asks for the channel, and low where it asks nothing
    (away from the edge, which the model's receptive fields cross)."""
    left, right = alpha[:, :48].mean(), alpha[:, 80:].mean()
    assert left > 50 and left > 10 * right, (left, right)


def test_alpha_is_higher_inside_the_mask(masked: Path) -> None:
    assert_higher_inside(alpha_of(masked / "render_alpha.png"))


@pytest.mark.slow
@pytest.mark.parametrize("param", ["maco", "pixel"])
def test_every_parameterisation_gives_the_map(tmp_path: Path, param: str) -> None:
    masked_render(tmp_path / "run", f"param={param}", "trainer.max_steps=8")
    assert_higher_inside(alpha_of(tmp_path / "run" / "render_alpha.png"))


def test_a_resumed_render_gives_the_same_map(masked: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    masked_render(run_dir, "trainer.max_steps=4", "checkpoint.every_n_steps=4")
    masked_render(run_dir, "trainer.max_steps=8", "checkpoint.every_n_steps=4", "resume=true")
    assert "continuing octave 1 from" in (run_dir / "render.log").read_text()
    assert np.array_equal(
        alpha_of(run_dir / "render_alpha.png"), alpha_of(masked / "render_alpha.png")
    )


def test_rgba_render_is_the_plain_render_with_the_map_as_its_alpha(tmp_path, tiny_run):
    # TINY is a pyramid of two octaves: the map is the last one's.
    tiledream(*TINY, "output.alpha=true", f"hydra.run.dir={tmp_path}")
    with Image.open(tmp_path / "render.png") as rgba, Image.open(tiny_run / "render.png") as rgb:
        assert rgba.mode == "RGBA" and rgb.mode == "RGB"
        pixels = np.asarray(rgba)
        assert np.array_equal(pixels[..., :3], np.asarray(rgb))
    alpha = alpha_of(tmp_path / "render_alpha.png")
    assert np.array_equal(pixels[..., 3], alpha)
    assert alpha.std() > 10 and (alpha == 255).mean() < 0.05
    for name in ("render.png", "render_alpha.png"):
        assert read_recipe(tmp_path / name).overrides[-1] == "output.alpha=true"
    with Image.open(tmp_path / "render_tiles.png") as tiles:
        assert tiles.mode == "RGB"


def test_the_writer_blends_the_map_like_the_picture_into_png_tiff_and_not_the_deep_zoom(
    tmp_path: Path,
) -> None:
    tiling = TilingModule(64, 0.25, [300, 280])
    tiles = torch.rand(tiling.num_tiles(), 4, 64, 64, generator=torch.Generator().manual_seed(0))
    everything = Pictures(png=True, deepzoom=True, tiff=True, png_max_pixels=10**6, alpha=True)
    write_pictures(tiling, lambda idx: tiles[idx], tmp_path, 2, everything, recipe=a_recipe())
    canvas = to_uint8(tiling.rebuild_with_masks(tiles).clamp(0, 1)[0]).numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "render.png")), canvas)
    assert np.array_equal(alpha_of(tmp_path / "render_alpha.png"), canvas[..., 3])
    assert np.asarray(Image.open(tmp_path / "render_tiles.png")).shape == (300, 280, 3)
    with tifffile.TiffFile(tmp_path / "render.tif") as tif:
        assert np.array_equal(tif.series[0].levels[0].asarray(), canvas)
    assert np.asarray(Image.open(next((tmp_path / "render_files").glob("*/0_0.jpg")))).ndim == 3
    for name in ("render_alpha.png", "render.tif"):
        read_recipe(tmp_path / name)


def choose(size: tuple[int, int], **output: object) -> Pictures:
    return Pictures.choose(OmegaConf.merge(OmegaConf.structured(OutputConfig), output), size)


def test_the_map_needs_a_png_or_a_tiff() -> None:
    assert not choose((64, 64)).alpha
    assert choose((64, 64), alpha=True).alpha
    assert choose((9000, 9000), alpha=True).tiff
    with pytest.raises(UserError, match=r"output.alpha: .* set output.tiff=true"):
        choose((9000, 9000), alpha=True, tiff=False)


def test_the_scale_is_the_quantile_of_the_accumulated_values() -> None:
    rows = torch.linspace(0, 1, 100 * 64).reshape(100, 8, 8) ** 2
    expected = float(torch.quantile(rows.flatten(), QUANTILE))
    assert alpha_scale(rows, CPU) == pytest.approx(expected, abs=2 / 65536)
    assert alpha_scale(torch.zeros(2, 8, 8), CPU) == 1.0
    grad = torch.tensor([[[[1.0]], [[-2.0]], [[0.5]]]])
    assert magnitude(grad).tolist() == [[[3.5]]]


def test_the_accumulators_are_counted_in_a_tiles_memory() -> None:
    param = PixelParam((24, 32))
    assert tile_bytes(param, alpha=True) - tile_bytes(param) == 24 * 32 * 4


def test_a_mixed_precision_gradient_is_unscaled_and_an_overflow_counts_zero() -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    grad = torch.tensor([[2048.0, float("inf")], [-512.0, float("nan")]])
    assert unscaled(grad, scaler).tolist() == [[2.0, 0.0], [-0.5, 0.0]]
    assert unscaled(grad, None) is grad  # full precision and bf16: the loss is not scaled
