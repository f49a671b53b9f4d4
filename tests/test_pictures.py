"""The full-size pictures from the strips: PNG, pyramidal BigTIFF, deep zoom and its viewer."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from omegaconf import OmegaConf
from PIL import Image

from render.config import OutputConfig
from render.errors import UserError
from render.outputs import to_uint8
from render.pictures import DZI_TILE, Pictures, write_pictures
from tiling import TilingModule

# Three TIFF levels (700x600, 350x300, 175x150) and eleven deep-zoom levels (0..10).
HEIGHT, WIDTH = 600, 700
EVERYTHING = Pictures(png=True, deepzoom=True, tiff=True, png_max_pixels=HEIGHT * WIDTH)


def smooth_tiles(tiling: TilingModule) -> torch.Tensor:
    """Tiles of a picture that changes everywhere but slowly (JPEG keeps it within a few
    levels), perturbed per tile so that the blend is not the identity."""
    height, width = tiling._base_size
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    picture = torch.stack(
        [
            0.5 + 0.4 * torch.sin(xs / 37.0) * torch.cos(ys / 23.0),
            xs / width,
            ys / height,
        ]
    )[None]
    tiles = tiling.split_into_tiles(picture)
    shifts = torch.randn(len(tiles), 3, 1, 1, generator=torch.Generator().manual_seed(0))
    return tiles + 0.03 * shifts


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A run folder with every picture, the canvas as 8-bit pixels, and with tile borders."""
    run_dir = tmp_path_factory.mktemp("run")
    tiling = TilingModule(64, 0.25, [HEIGHT, WIDTH])
    tiles = smooth_tiles(tiling)
    fetched: list[int] = []

    def fetch(idx: torch.Tensor) -> torch.Tensor:
        fetched.append(len(idx))
        return tiles[idx]

    write_pictures(tiling, fetch, run_dir, 2, EVERYTHING)
    assert max(fetched) == tiling.tiling_pattern()[1], "one tile row at a time"
    canvas = tiling.rebuild_with_masks(tiles).clamp(0, 1)[0]
    bordered = tiling.rebuild_with_masks(tiles, border=2).clamp(0, 1)[0]
    return run_dir, to_uint8(canvas).numpy(), to_uint8(bordered).numpy()


def test_png_is_the_canvas_and_the_tile_view_its_borders(written):
    run_dir, canvas, bordered = written
    assert np.array_equal(np.asarray(Image.open(run_dir / "render.png")), canvas)
    assert np.array_equal(np.asarray(Image.open(run_dir / "render_tiles.png")), bordered)
    assert tuple(bordered[0, 0]) == (255, 0, 0)
    # Nothing half-written is left behind.
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []


def test_tiff_is_a_tiled_pyramid_whose_level_0_is_the_png(written):
    run_dir, canvas, _ = written
    with tifffile.TiffFile(run_dir / "render.tif") as tif:
        assert tif.is_bigtiff
        levels = tif.series[0].levels
        assert [level.shape for level in levels] == [(600, 700, 3), (300, 350, 3), (150, 175, 3)]
        assert all(page.is_tiled for page in tif.pages)
        assert np.array_equal(levels[0].asarray(), canvas)
        # Each level is the one above it halved (libvips averages 2x2 blocks).
        halved = canvas.reshape(300, 2, 350, 2, 3).mean((1, 3))
        assert np.abs(levels[1].asarray() - halved).max() <= 1


def dzi_tile(run_dir: Path, level: int, column: int, row: int) -> tuple[np.ndarray, int, int]:
    """A deep-zoom tile's pixels and the canvas position of its first pixel."""
    size, overlap = DZI_TILE["tile_size"], DZI_TILE["overlap"]
    assert isinstance(size, int) and isinstance(overlap, int)
    tile = np.asarray(Image.open(run_dir / "render_files" / str(level) / f"{column}_{row}.jpg"))
    return (
        tile.astype(int),
        column * size - (overlap if column else 0),
        row * size - (overlap if row else 0),
    )


def test_deep_zoom_levels_and_the_deepest_tiles_hold_the_canvas(written):
    run_dir, canvas, _ = written
    root = ET.parse(run_dir / "render.dzi").getroot()
    size = root[0].attrib
    assert (size["Width"], size["Height"]) == (str(WIDTH), str(HEIGHT))
    deepest = math.ceil(math.log2(WIDTH))
    levels = (run_dir / "render_files").glob("[0-9]*")
    assert sorted(int(p.name) for p in levels) == list(range(deepest + 1))
    tile, x, y = dzi_tile(run_dir, deepest, 1, 1)
    assert tile.shape == (256, 256, 3)
    here = canvas[y : y + 256, x : x + 256].astype(int)
    # JPEG at quality 90: within a few levels here, far from the same tile a few pixels off.
    assert np.abs(tile - here).mean() < 1.5
    assert np.abs(tile - canvas[y + 8 : y + 264, x + 8 : x + 264]).mean() > 4
    # The coarsest level is the whole picture in one pixel.
    assert Image.open(run_dir / "render_files" / "0" / "0_0.jpg").size == (1, 1)


def test_viewer_and_its_vendored_openseadragon(written):
    run_dir, _, _ = written
    page = (run_dir / "viewer.html").read_text()
    assert '"Url": "render_files/"' in page and '"Width": "700"' in page
    for name in ("openseadragon.min.js", "LICENSE.txt", "images/home_rest.png"):
        assert (run_dir / "openseadragon" / name).is_file(), name


def choose(size: tuple[int, int], **output: object) -> Pictures:
    return Pictures.choose(OmegaConf.merge(OmegaConf.structured(OutputConfig), output), size)


def test_which_pictures_a_canvas_gets():
    assert choose((4096, 4096)) == Pictures(True, False, False, 8192 * 8192)
    assert choose((4096, 4097)) == Pictures(True, True, True, 8192 * 8192)
    assert choose((8192, 8193)) == Pictures(False, True, True, 8192 * 8192)
    assert choose((64, 64), deepzoom=True) == Pictures(True, True, False, 8192 * 8192)
    assert choose((8192, 8193), tiff=False) == Pictures(False, True, False, 8192 * 8192)
    with pytest.raises(UserError, match=r"output.deepzoom and output.tiff are off"):
        choose((64, 64), png_max_pixels=100, deepzoom=False, tiff=False)
