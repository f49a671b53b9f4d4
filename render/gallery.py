"""A sweep's pictures side by side: a captioned contact sheet (PNG) and a web page (HTML).

``python scripts/gallery.py DIR`` on a multirun folder, or ``+gallery=true`` on a multirun
(``GalleryCallback`` runs at its end). Captions are the overrides that differ between jobs; the
ones every job shares head the sheet and the page. A class render's caption ends with its
transferability: the share of its windows at each level that a network which never rendered
it classifies as the class (``render.evaluation``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageDraw, ImageFont, ImageOps

from render.errors import UserError
from render.recipe import read_recipe
from render.viewer import read_dzi

__all__ = ["GalleryCallback", "Job", "contact_sheet", "find_jobs", "write_gallery"]

PICTURE = "render.png"
# A render above output.png_max_pixels has no PNG: its deep zoom and viewer stand in.
VIEWER = "viewer.html"
THUMB = 320  # the longest side of a picture on the sheet, in pixels
PAD = 12
FONT_SIZE = 16
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MISSING = (200, 200, 200)
# ImageFont.load_default falls back to the bitmap font where Pillow lacks FreeType.
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class Job:
    """One job of a sweep: its folder, its overrides, and its picture if it wrote one."""

    folder: Path
    overrides: tuple[str, ...]

    @property
    def picture(self) -> Path | None:
        """render.png, else the largest deep-zoom level that is a single tile."""
        path = self.folder / PICTURE
        return path if path.is_file() else deepzoom_thumbnail(self.folder)

    @property
    def viewer(self) -> Path | None:
        path = self.folder / VIEWER
        return path if path.is_file() else None

    @cached_property
    def judged(self) -> list[str]:
        """For a class render's render.png, one line: the judge's share of windows classified
        as the class at each level; else none."""
        path = self.folder / PICTURE
        try:
            recipe = read_recipe(path) if path.is_file() else None
        except UserError:  # a picture without a recipe says nothing of its class
            recipe = None
        if recipe is None or not recipe.names_classes:
            return []
        # Imported here: torch and the judge only for a sweep of class renders.
        from render.evaluation import class_layout, judge_model, transferability
        from render.quality import load_picture

        if class_layout(recipe) is None:
            return []
        shares = transferability(load_picture(path), recipe)
        verdict = (
            "rendered it"
            if shares is None
            else " / ".join(f"{100 * share:.0f}%" for share in shares.values())
        )
        return [f"judge {judge_model().name}: {verdict}"]


def deepzoom_thumbnail(folder: Path) -> Path | None:
    """The largest level of ``folder``'s render.dzi that is one tile (level 0 is one pixel)."""
    dzi = folder / "render.dzi"
    if not dzi.is_file():
        return None
    suffix = read_dzi(dzi)["Format"]
    tiles = folder / "render_files"
    level, found = 0, None
    while (tiles / str(level) / f"0_0.{suffix}").is_file():
        if (tiles / str(level) / f"1_0.{suffix}").exists() or (
            tiles / str(level) / f"0_1.{suffix}"
        ).exists():
            break
        found, level = tiles / str(level) / f"0_0.{suffix}", level + 1
    return found


def find_jobs(sweep_dir: Path) -> list[Job]:
    """The jobs of a multirun folder (subfolders with ``.hydra/overrides.yaml``), in job order."""
    if not sweep_dir.is_dir():
        raise UserError(f"gallery: {sweep_dir} is not a folder")
    jobs = [
        Job(path.parent.parent, tuple(str(o) for o in OmegaConf.load(path)))
        for path in sweep_dir.glob("*/.hydra/overrides.yaml")
    ]
    if not jobs:
        raise UserError(f"gallery: {sweep_dir} has no jobs (no */.hydra/overrides.yaml)")
    # Hydra names job folders by number: 10 comes after 9.
    return sorted(jobs, key=lambda job: (len(job.folder.name), job.folder.name))


def split_overrides(jobs: Sequence[Job]) -> tuple[list[str], list[list[str]]]:
    """The overrides every job has, and per job the others: its caption (else its number)."""
    shared = [o for o in jobs[0].overrides if all(o in job.overrides for job in jobs)]
    own = [[o for o in job.overrides if o not in shared] for job in jobs]
    return shared, [o or [f"job {job.folder.name}"] for job, o in zip(jobs, own, strict=True)]


def wrap(text: str, font: Font, width: float) -> list[str]:
    """``text`` cut into lines no wider than ``width`` (overrides have few spaces: cut anywhere)."""
    lines = [""]
    for char in text:
        if lines[-1] and font.getlength(lines[-1] + char) > width:
            lines.append("")
        lines[-1] += char
    return lines


def caption_lines(overrides: Sequence[str], font: Font, width: float) -> list[str]:
    """One override a line, wrapped to ``width``."""
    return [line for override in overrides for line in wrap(override, font, width)]


def contact_sheet(jobs: Sequence[Job], title: str) -> Image.Image:
    """Every job's picture scaled into a ``THUMB`` square, captioned with its own overrides."""
    font = ImageFont.load_default(size=FONT_SIZE)
    line_h = FONT_SIZE + 4
    shared, own = split_overrides(jobs)
    captions = [
        caption_lines([*overrides, *job.judged], font, THUMB)
        for job, overrides in zip(jobs, own, strict=True)
    ]
    # A row of up to 4, then a square-ish grid.
    columns = min(len(jobs), max(4, math.ceil(math.sqrt(len(jobs)))))
    rows = math.ceil(len(jobs) / columns)
    cell_w = THUMB + PAD
    cell_h = THUMB + PAD + line_h * max(len(c) for c in captions) + PAD
    width = PAD + columns * cell_w
    header = caption_lines([title, *shared], font, width - 2 * PAD)
    top = PAD + line_h * len(header) + PAD
    sheet = Image.new("RGB", (width, top + rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(header):
        draw.text((PAD, PAD + i * line_h), line, fill=INK, font=font)
    for index, (job, caption) in enumerate(zip(jobs, captions, strict=True)):
        x = PAD + (index % columns) * cell_w
        y = top + (index // columns) * cell_h
        paste_thumbnail(sheet, draw, job, (x, y), font)
        for i, line in enumerate(caption):
            draw.text((x, y + THUMB + PAD // 2 + i * line_h), line, fill=INK, font=font)
    return sheet


def paste_thumbnail(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    job: Job,
    at: tuple[int, int],
    font: Font,
) -> None:
    """The job's picture fitted into the ``THUMB`` square at ``at``, or a grey 'no picture'."""
    x, y = at
    if job.picture is None:
        draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), fill=MISSING)
        draw.text((x + PAD, y + PAD), f"no {PICTURE}", fill=INK, font=font)
        return
    with Image.open(job.picture) as picture:
        thumb = ImageOps.contain(picture.convert("RGB"), (THUMB, THUMB), Image.Resampling.LANCZOS)
    sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))


def link(path: Path, sweep_dir: Path) -> str:
    """``path`` as an HTML-escaped URL relative to the sweep folder."""
    return html.escape(quote(path.relative_to(sweep_dir).as_posix()))


def page(jobs: Sequence[Job], sweep_dir: Path, title: str) -> str:
    """The HTML page: every picture with all its overrides, a click away from full size (its
    PNG, or its deep-zoom viewer)."""
    shared, own = split_overrides(jobs)
    figures = []
    for job, overrides in zip(jobs, own, strict=True):
        lines = [html.escape(o) for o in [*overrides, *job.judged]]
        viewer = None if job.viewer is None else link(job.viewer, sweep_dir)
        if job.picture is None:
            body = f'<div class="missing">no {PICTURE}</div>'
        else:
            src = link(job.picture, sweep_dir)
            # A deep-zoom thumbnail opens the viewer: there is no full-size PNG to open.
            target = src if job.picture.name == PICTURE or viewer is None else viewer
            body = f'<a href="{target}"><img src="{src}" alt="{", ".join(lines)}"></a>'
        if viewer is not None:
            lines.append(f'<a class="zoom" href="{viewer}">zoom in ({VIEWER})</a>')
        figures.append(f"<figure>{body}<figcaption>{'<br>'.join(lines)}</figcaption></figure>")
    common = "".join(f"<li>{html.escape(o)}</li>" for o in shared)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
main {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; width: {THUMB}px; }}
img, .missing {{ width: {THUMB}px; height: {THUMB}px; object-fit: contain; background: #eee; }}
figcaption {{ font-family: monospace; overflow-wrap: anywhere; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Every job:</p><ul>{common}</ul><p><a href="gallery.png">Contact sheet</a></p>
<main>
{chr(10).join(figures)}
</main></body></html>
"""


def write_gallery(sweep_dir: Path) -> tuple[Path, Path]:
    """Write ``gallery.png`` and ``gallery.html`` into the multirun folder; return their paths."""
    jobs = find_jobs(sweep_dir)
    title = f"{sweep_dir.resolve().name}: {len(jobs)} jobs"
    sheet_path, page_path = sweep_dir / "gallery.png", sweep_dir / "gallery.html"
    contact_sheet(jobs, title).save(sheet_path)
    page_path.write_text(page(jobs, sweep_dir, title), encoding="utf-8")
    return sheet_path, page_path


class GalleryCallback(Callback):
    """Hydra callback (in render.yaml): with ``+gallery=true``, the gallery at a multirun's end."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("gallery", False):
            write_gallery(Path(config.hydra.sweep.dir))
