"""The full-size picture files of a render, written from the canvas strips (render/strips.py).

No writer holds the canvas in floats: ``render.png`` and ``render_tiles.png`` (up to
``output.png_max_pixels``) fill an 8-bit array band by band; for larger pictures, the strips go
once into a tiled level-0 TIFF (tifffile), from which libvips (pyvips) streams the pyramidal
BigTIFF ``render.tif`` and the deep-zoom pyramid ``render.dzi`` + ``render_files/`` that
``viewer.html`` opens. Every file appears complete or not at all, and carries the render's
recipe (render/recipe.py).

With ``output.alpha`` the tiles carry their transparency map as a fourth channel
(render/alpha.py), blended with the pixels in the same strips: ``render.png`` and
``render.tif`` are RGBA, and ``render_alpha.png`` (grayscale) is written beside
``render.png``. The deep zoom's JPEG tiles have no alpha channel: they show the picture alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor

from render.errors import UserError
from render.outputs import atomic_path, to_uint8
from render.recipe import Recipe
from render.strips import Fetch, canvas_strips, fetch_order
from render.viewer import write_viewer
from tiling import TilingModule

log = logging.getLogger(__name__)
# libvips reports each thread pool it finishes at INFO.
logging.getLogger("pyvips").setLevel(logging.WARNING)

__all__ = ["DZI_TILE", "TIFF_TILE", "Pictures", "serve_pictures", "write_pictures"]

# Rows blended at a time: one row of TIFF tiles.
TIFF_TILE = 256
# Deep-zoom tiles: JPEG at quality 90 (no chroma subsampling at that quality in libvips) is about
# a fifth of PNG's size on these textures and is what deep-zoom viewers are built for; the
# lossless master for print is render.tif.
DZI_TILE = {"tile_size": 254, "overlap": 1, "suffix": ".jpg[Q=90]"}
# render.tif: lossless, for printing.
TIFF_OPTIONS = {"compression": "deflate", "predictor": "horizontal"}


@dataclass(frozen=True)
class Pictures:
    """Which full-size files a canvas gets."""

    png: bool
    deepzoom: bool
    tiff: bool
    png_max_pixels: int
    alpha: bool = False

    @classmethod
    def choose(cls, output: DictConfig, size: tuple[int, int]) -> Pictures:
        """``output.*`` for a ``size`` (height, width) canvas; None: on above large_pixels."""
        pixels = size[0] * size[1]
        large = pixels > output.large_pixels
        chosen = cls(
            png=pixels <= output.png_max_pixels,
            deepzoom=large if output.deepzoom is None else bool(output.deepzoom),
            tiff=large if output.tiff is None else bool(output.tiff),
            png_max_pixels=output.png_max_pixels,
            alpha=bool(output.alpha),
        )
        if not (chosen.png or chosen.deepzoom or chosen.tiff):
            raise UserError(
                f"output: a {size[1]}x{size[0]} canvas has more pixels than "
                f"output.png_max_pixels={output.png_max_pixels} and output.deepzoom and "
                f"output.tiff are off, so no picture would be written; turn one of them on"
            )
        if chosen.alpha and not (chosen.png or chosen.tiff):
            raise UserError(
                f"output.alpha: a {size[1]}x{size[0]} canvas has more pixels than "
                f"output.png_max_pixels={output.png_max_pixels} and output.tiff is off, so the "
                f"transparency map would be written nowhere (the deep zoom's JPEG tiles have no "
                f"alpha channel); set output.tiff=true"
            )
        return chosen

    def strip_passes(self) -> int:
        """How many times ``write_pictures`` reads the canvas strips (of ``TIFF_TILE`` rows):
        a process serving tiles to the writer serves ``fetch_order`` that many times."""
        pyramid = self.deepzoom or self.tiff
        return int(pyramid) + int(self.png) + int(self.png and not pyramid)

    def main_file(self) -> str:
        """The file that holds the whole picture: render.png, else render.tif, else render.dzi."""
        return "render.png" if self.png else "render.tif" if self.tiff else "render.dzi"


def write_pictures(
    tiling: TilingModule,
    fetch: Fetch,
    run_dir: Path,
    border: int,
    chosen: Pictures,
    *,
    recipe: Recipe,
) -> None:
    """Write the chosen files of the canvas that ``tiling`` and ``fetch`` describe, each
    carrying ``recipe``.

    ``chosen.main_file()`` is written last: a run folder that has it has all its pictures.
    With ``chosen.alpha``, ``fetch`` gives each tile's transparency map as a fourth channel.
    """
    height, width = tiling._base_size
    channels = 4 if chosen.alpha else 3
    png = np.empty((height, width, channels), np.uint8) if chosen.png else None
    if chosen.deepzoom or chosen.tiff:
        with _level0(run_dir) as level0:
            started = time.perf_counter()
            _write_level0(level0, _tiff_tiles(tiling, fetch, png), (height, width, channels))
            log.info("wrote the full-size tiles in %.1f s", time.perf_counter() - started)
            if chosen.deepzoom:
                (run_dir / "viewer.html").unlink(missing_ok=True)
                _timed(run_dir / "render.dzi", lambda: write_deepzoom(level0, run_dir, recipe))
                write_viewer(run_dir)
            if chosen.tiff:
                _timed(
                    run_dir / "render.tif",
                    lambda: write_tiff(level0, run_dir / "render.tif", recipe),
                )
    if png is None:
        log.info(
            "render.png and render_tiles.png skipped: the %dx%d canvas has more than "
            "output.png_max_pixels=%d pixels (PNG viewers and browsers refuse such pictures); "
            "open %s instead",
            width,
            height,
            chosen.png_max_pixels,
            " or ".join(
                name
                for name, on in (("viewer.html", chosen.deepzoom), ("render.tif", chosen.tiff))
                if on
            ),
        )
        return
    # render.png is saved aside first and moved in last, after render_tiles.png.
    with atomic_path(run_dir / "render.png") as main:
        if not (chosen.deepzoom or chosen.tiff):
            _fill(png, tiling, fetch, None)
        _timed(run_dir / "render.png", lambda: _save_png(png, main, recipe))
        if chosen.alpha:
            _timed(
                run_dir / "render_alpha.png",
                lambda: _save_atomic(png[..., 3], run_dir / "render_alpha.png", recipe),
            )
        _fill(png, tiling, fetch, border or None)
        _timed(
            run_dir / "render_tiles.png",
            lambda: _save_atomic(png[..., :3], run_dir / "render_tiles.png", recipe),
        )


def serve_pictures(
    tiling: TilingModule, serve: Callable[[Tensor], object], chosen: Pictures
) -> None:
    """On a process that holds tiles but writes nothing: answer ``write_pictures``' fetches,
    in step with the writer, by calling ``serve`` with the tile indices it asks for."""
    for _ in range(chosen.strip_passes()):
        for idx in fetch_order(tiling, TIFF_TILE):
            serve(idx)


def _timed(path: Path, write: Callable[[], None]) -> None:
    started = time.perf_counter()
    write()
    log.info("wrote %s in %.1f s", path, time.perf_counter() - started)


def _fill(png: np.ndarray, tiling: TilingModule, fetch: Fetch, border: int | None) -> None:
    """The canvas (with tile borders when ``border``) into ``png``, band by band (all the
    channels ``fetch`` gives)."""
    for top, band in canvas_strips(tiling, fetch, TIFF_TILE, border):
        png[top : top + band.shape[1]] = to_uint8(band).numpy()


def _save_png(pixels: np.ndarray, path: Path, recipe: Recipe) -> None:
    """``pixels`` ``[h, w]``, ``[h, w, 3]`` or ``[h, w, 4]``: a grayscale, RGB or RGBA PNG."""
    Image.fromarray(pixels).save(path, format="PNG", pnginfo=recipe.png_info())


def _save_atomic(pixels: np.ndarray, path: Path, recipe: Recipe) -> None:
    with atomic_path(path) as tmp:
        _save_png(pixels, tmp, recipe)


def _tiff_tiles(tiling: TilingModule, fetch: Fetch, png: np.ndarray | None) -> Iterator[np.ndarray]:
    """Level 0's tiles in row-major order from the strips (also filling ``png`` if given)."""
    for top, band in canvas_strips(tiling, fetch, TIFF_TILE):
        rows = to_uint8(band).numpy()
        if png is not None:
            png[top : top + rows.shape[0]] = rows
        for left in range(0, rows.shape[1], TIFF_TILE):
            tile = np.zeros((TIFF_TILE, TIFF_TILE, rows.shape[2]), np.uint8)
            part = rows[:, left : left + TIFF_TILE]
            tile[: part.shape[0], : part.shape[1]] = part
            yield tile


class _level0:
    """A temporary tiled TIFF of the full-size picture in the run folder, deleted on exit."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def __enter__(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.run_dir, prefix=".level0.", suffix=".tif")
        os.close(fd)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _write_level0(path: Path, tiles: Iterator[np.ndarray], shape: tuple[int, int, int]) -> None:
    """``shape``: (height, width, 3), or 4 for RGBA (the transparency map, unassociated)."""
    import tifffile

    tifffile.imwrite(
        path,
        tiles,
        shape=shape,
        dtype=np.uint8,
        tile=(TIFF_TILE, TIFF_TILE),
        photometric="rgb",
        extrasamples=("unassalpha",) if shape[2] == 4 else None,
        bigtiff=True,
        # No tifffile shape description: libvips would copy it into render.tif.
        metadata=None,
    )


def _vips_image(level0: Path) -> Any:
    import pyvips

    return pyvips.Image.new_from_file(str(level0), access="sequential")


def write_tiff(level0: Path, path: Path, recipe: Recipe) -> None:
    """``path``: a tiled (256), pyramidal, lossless BigTIFF of the level-0 TIFF, with
    ``recipe`` as its ImageDescription.

    ImageDescription, not XMP or a private tag: it is TIFF's own text field, which tifffile,
    libvips, exiftool, tiffinfo, ImageMagick and GIMP all show; XMP would wrap the text in
    RDF/XML, and a private tag is shown by none of them.
    """
    import pyvips

    image = _vips_image(level0).copy()
    # libvips writes its "image-description" field as the ImageDescription tag.
    image.set_type(pyvips.GValue.gstr_type, "image-description", recipe.text)
    with atomic_path(path) as tmp:
        image.tiffsave(
            str(tmp),
            tile=True,
            tile_width=TIFF_TILE,
            tile_height=TIFF_TILE,
            pyramid=True,
            bigtiff=True,
            **TIFF_OPTIONS,
        )


def write_deepzoom(level0: Path, run_dir: Path, recipe: Recipe) -> None:
    """``render.dzi`` (carrying ``recipe``) + ``render_files/`` in ``run_dir``: built aside,
    moved in folder first.

    The descriptor is moved in last, so a ``render.dzi`` never names an incomplete folder.
    """
    aside = Path(tempfile.mkdtemp(dir=run_dir, prefix=".deepzoom."))
    try:
        # JPEG tiles: the picture without a transparency map.
        _vips_image(level0).extract_band(0, n=3).dzsave(str(aside / "render"), **DZI_TILE)
        recipe.write_into_dzi(aside / "render.dzi")
        (run_dir / "render.dzi").unlink(missing_ok=True)
        shutil.rmtree(run_dir / "render_files", ignore_errors=True)
        os.replace(aside / "render_files", run_dir / "render_files")
        os.replace(aside / "render.dzi", run_dir / "render.dzi")
    finally:
        shutil.rmtree(aside, ignore_errors=True)
