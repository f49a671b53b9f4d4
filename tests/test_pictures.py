"""The full-size pictures from the strips: PNG, pyramidal BigTIFF, deep zoom and its viewer."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import math
import threading
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from conftest import TINY, a_recipe, tiledream
from omegaconf import OmegaConf
from PIL import Image
from test_gallery import chromium

from render.config import OutputConfig
from render.errors import UserError
from render.outputs import to_uint8
from render.pictures import DZI_TILE, TIFF_TILE, Pictures, write_pictures
from render.recipe import read_recipe
from render.strips import fetch_order
from tiling import TilingModule

# Three TIFF levels (700x600, 350x300, 175x150) and eleven deep-zoom levels (0..10).
HEIGHT, WIDTH = 600, 700
EVERYTHING = Pictures(png=True, deepzoom=True, tiff=True, png_max_pixels=HEIGHT * WIDTH)
RECIPE = a_recipe()


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

    write_pictures(tiling, fetch, run_dir, 2, EVERYTHING, recipe=RECIPE)
    assert max(fetched) == tiling.tiling_pattern()[1], "one tile row at a time"
    assert len(fetched) == EVERYTHING.strip_passes() * len(list(fetch_order(tiling, TIFF_TILE)))
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


def test_strip_passes_count_what_write_pictures_reads(tmp_path):
    tiling = TilingModule(64, 0.25, [100, 90])
    tiles = torch.rand(tiling.num_tiles(), 3, 64, 64)
    per_pass = len(list(fetch_order(tiling, TIFF_TILE)))
    for chosen in (
        Pictures(png=True, deepzoom=False, tiff=False, png_max_pixels=9000),
        Pictures(png=False, deepzoom=False, tiff=True, png_max_pixels=1),
    ):
        calls: list[torch.Tensor] = []

        def fetch(idx: torch.Tensor, calls: list[torch.Tensor] = calls) -> torch.Tensor:
            calls.append(idx)
            return tiles[idx]

        write_pictures(tiling, fetch, tmp_path, 2, chosen, recipe=RECIPE)
        assert len(calls) == chosen.strip_passes() * per_pass, chosen


def test_a_failed_writing_leaves_no_main_file_and_no_temporary_files(tmp_path):
    tiling = TilingModule(64, 0.25, [100, 90])
    tiles = torch.rand(tiling.num_tiles(), 3, 64, 64)
    chosen = Pictures(png=True, deepzoom=True, tiff=True, png_max_pixels=9000)
    calls = EVERYTHING.strip_passes() * len(list(fetch_order(tiling, TIFF_TILE)))

    served: list[torch.Tensor] = []

    def fetch(idx: torch.Tensor) -> torch.Tensor:
        served.append(idx)
        if len(served) == calls:
            raise RuntimeError("stopped")
        return tiles[idx]

    with pytest.raises(RuntimeError, match="stopped"):
        write_pictures(tiling, fetch, tmp_path, 2, chosen, recipe=RECIPE)
    # The last strip of render_tiles.png failed: the pyramid files are whole, render.png is not
    # there (it is moved in last), and nothing temporary is left.
    names = {p.name for p in tmp_path.iterdir()}
    assert {"render.tif", "render.dzi", "render_files", "viewer.html"} <= names
    assert "render.png" not in names and "render_tiles.png" not in names
    assert not [name for name in names if name.startswith(".")]


def test_which_pictures_a_canvas_gets():
    assert choose((4096, 4096)) == Pictures(True, False, False, 8192 * 8192)
    assert choose((4096, 4097)) == Pictures(True, True, True, 8192 * 8192)
    assert choose((8192, 8193)) == Pictures(False, True, True, 8192 * 8192)
    assert choose((64, 64), deepzoom=True) == Pictures(True, True, False, 8192 * 8192)
    assert choose((8192, 8193), tiff=False) == Pictures(False, True, False, 8192 * 8192)
    with pytest.raises(UserError, match=r"output.deepzoom and output.tiff are off"):
        choose((64, 64), png_max_pixels=100, deepzoom=False, tiff=False)


@pytest.mark.slow
def test_command_line_writes_deep_zoom_and_tiff_and_says_why_no_png(tmp_path):
    tiledream(
        *TINY,
        "render.octaves=1",
        "trainer.max_steps=1",
        "output.deepzoom=true",
        "output.tiff=true",
        "output.png_max_pixels=10000",
        f"hydra.run.dir={tmp_path}",
    )
    for name in ("render.dzi", "render_files/7/0_0.jpg", "viewer.html", "progress.gif"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "render.png").exists()
    with tifffile.TiffFile(tmp_path / "render.tif") as tif:
        assert tif.series[0].levels[0].shape == (112, 112, 3)
    log = (tmp_path / "render.log").read_text()
    assert (
        "render.png and render_tiles.png skipped: the 112x112 canvas has more than "
        "output.png_max_pixels=10000 pixels" in log
    )
    assert "open viewer.html or render.tif instead" in log


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on localhost (a page may read back pixels of same-origin images)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# Zooms the viewer to full size (2 screen pixels an image pixel) centred on image point (x, y),
# waits until every tile it needs is loaded and its deepest level's tile (column, row) is drawn
# (else the script times out), and returns that level.
ZOOM = """
const [x, y, column, row, done] = arguments;
const ready = () => {
  const image = viewer.world.getItemAt(0);
  viewer.viewport.panTo(image.imageToViewportCoordinates(x, y), true);
  viewer.viewport.zoomTo(image.imageToViewportZoom(2), null, true);
  // Until the new view's tiles are asked for, the old view may still count as fully loaded.
  const check = () => {
    const level = image.source.maxLevel;
    window.drawn = image.getTilesToDraw().map(t => t.tile)
      .find(t => t.level === level && t.x === column && t.y === row && t.loaded);
    if (!image.getFullyLoaded() || !window.drawn) { setTimeout(check, 50); return; }
    setTimeout(() => done(level), 500);
  };
  check();
};
if (viewer.world.getItemCount() > 0) ready(); else viewer.addOnceHandler("open", ready);
"""
# The drawn tile as OpenSeadragon holds it: its size and RGBA bytes in base64.
READ_TILE = """
const done = arguments[0];
const tile = window.drawn;
tile.getCache(tile.originalCacheKey).getDataAs("context2d", true).then(context => {
  const { width, height } = context.canvas;
  const bytes = context.getImageData(0, 0, width, height).data;
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  done([width, height, btoa(text)]);
});
"""


@pytest.mark.slow
def test_the_viewer_shows_the_canvas_at_full_size_in_a_real_browser(written):
    run_dir, canvas, _ = written
    deepest = math.ceil(math.log2(WIDTH))
    _, x, y = dzi_tile(run_dir, deepest, 1, 1)
    with chromium(800, 600) as driver, served(run_dir) as root:
        driver.set_script_timeout(60)
        # Offline, from the run folder: the screen's middle is the canvas around (380, 380).
        driver.get((run_dir / "viewer.html").as_uri())
        assert driver.execute_async_script(ZOOM, 380, 380, 1, 1) == deepest
        screen = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
        middle = screen.shape[0] // 2, screen.shape[1] // 2
        shown = screen[middle[0] - 100 : middle[0] + 100 : 2, middle[1] - 100 : middle[1] + 100 : 2]
        assert np.abs(shown.astype(int) - canvas[330:430, 330:430]).mean() < 4
        # Without a drawer error (WebGL refuses file:// images; the navigator then stays black).
        console = [e["message"] for e in driver.get_log("browser") if e["source"] == "console-api"]
        assert console == []
        # Over HTTP a page may read the pixels back: the tile OpenSeadragon loaded is the canvas.
        driver.get(f"{root}/viewer.html")
        assert driver.execute_async_script(ZOOM, 380, 380, 1, 1) == deepest
        width, height, data = driver.execute_async_script(READ_TILE)
    tile = np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)[..., :3]
    assert tile.shape == (256, 256, 3)
    assert np.abs(tile.astype(int) - canvas[y : y + 256, x : x + 256]).mean() < 1.5
    assert np.abs(tile.astype(int) - canvas[y + 8 : y + 264, x + 8 : x + 264]).mean() > 4


def test_every_picture_carries_the_recipe(written):
    run_dir, _, _ = written
    for name in ("render.png", "render_tiles.png", "render.tif", "render.dzi"):
        assert read_recipe(run_dir / name) == RECIPE, name
    with tifffile.TiffFile(run_dir / "render.tif") as tif:
        # TIFF's own text tag, which every TIFF reader shows (tifffile drops the last newline).
        description = tif.pages.first.tags["ImageDescription"].value
        assert description == RECIPE.text.rstrip("\n")
    # The descriptor is still what deep-zoom readers expect: Image with its Size first.
    root = ET.parse(run_dir / "render.dzi").getroot()
    assert root.tag.endswith("}Image") and root[0].tag.endswith("}Size")


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """The (type, data) of each chunk of a PNG, checking each chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert int.from_bytes(data[at + 8 + length : at + 12 + length], "big") == zlib.crc32(
            kind + body
        ), kind
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def test_the_png_with_its_recipe_is_a_plain_png(written):
    run_dir, canvas, _ = written
    path = run_dir / "render.png"
    kinds = [kind for kind, _ in png_chunks(path)]
    # IHDR first, IEND last, the text chunks ancillary (a lowercase first letter: readers that
    # do not know them skip them) and before the pixels.
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    text = [k for k in kinds if k not in (b"IHDR", b"IDAT", b"IEND")]
    assert sorted(text) == [b"iTXt", b"tEXt"]
    assert max(kinds.index(k) for k in text) < kinds.index(b"IDAT")
    # Pillow and another decoder, libvips' (libspng), read the canvas.
    import pyvips

    assert np.array_equal(np.asarray(Image.open(path)), canvas)
    assert np.array_equal(pyvips.Image.new_from_file(str(path)).numpy(), canvas)
