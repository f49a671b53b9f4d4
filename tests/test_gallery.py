"""The gallery of a sweep: contact sheet, web page (opened in a real headless browser), command."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, a_recipe, tiledream
from PIL import Image
from test_evaluate import CAT, CHELSEA
from test_render_cli import TINY

from render.errors import UserError
from render.gallery import PAD, THUMB, find_jobs, split_overrides, write_gallery
from render.pictures import DZI_TILE
from render.viewer import write_viewer

GALLERY = str(ROOT / "scripts" / "gallery.py")
COLOURS = [(255, 0, 0), (0, 160, 0), (0, 0, 255)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def fake_sweep(root: Path, colours: list[tuple[int, int, int] | None]) -> Path:
    """A multirun folder as Hydra leaves it: job ``i`` has ``objective.channel=i``, a flat picture
    of ``colours[i]`` (None: the job wrote none) and a shared override."""
    for num, colour in enumerate(colours):
        job = root / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed=3\n- objective.channel={num}\n")
        if colour is not None:
            Image.new("RGB", (80, 40), colour).save(job / "render.png")
    (root / "multirun.yaml").write_text("{}\n")
    return root


def test_jobs_in_job_order_captioned_by_what_differs(tmp_path: Path) -> None:
    jobs = find_jobs(fake_sweep(tmp_path, [COLOURS[0]] * 11))
    assert [job.folder.name for job in jobs] == [str(n) for n in range(11)]
    shared, own = split_overrides(jobs)
    assert shared == ["seed=3"]
    assert own[10] == ["objective.channel=10"]
    # One job: everything is shared, and the caption is the job's number.
    assert split_overrides(find_jobs(fake_sweep(tmp_path / "one", [None]))) == (
        ["seed=3", "objective.channel=0"],
        [["job 0"]],
    )


def test_contact_sheet_places_every_picture_above_its_caption(tmp_path: Path) -> None:
    sweep = fake_sweep(tmp_path, [*COLOURS, None])
    sheet_path, _ = write_gallery(sweep)
    with Image.open(sheet_path) as sheet:
        sheet = sheet.convert("RGB")
    # One row of four cells at the bottom of the sheet, each a THUMB square over its caption.
    cell = sheet.width // 4
    captions_top = sheet.height - 40
    for index, colour in enumerate([*COLOURS, (200, 200, 200)]):
        middle = (index * cell + cell // 2, captions_top - THUMB // 2 - 8)
        assert sheet.getpixel(middle) == colour, f"cell {index}"
        caption = sheet.crop((index * cell, captions_top - 10, (index + 1) * cell, sheet.height))
        assert caption.convert("L").getextrema()[0] < 100, f"cell {index} has a caption"


def test_a_class_render_is_captioned_with_the_judges_verdict(tmp_path: Path) -> None:
    # Job 0: a photo of the cat as a class render of it; job 1: a flat picture with no recipe.
    sweep = fake_sweep(tmp_path, [None, COLOURS[0]])
    with Image.open(CHELSEA) as photo:
        photo.convert("RGB").save(sweep / "0" / "render.png", pnginfo=a_recipe(*CAT).png_info())
    jobs = find_jobs(sweep)
    assert jobs[0].judged == ["judge efficientnet_lite2: 100%"]
    assert jobs[1].judged == []
    _, page = write_gallery(sweep)
    figures = page.read_text().split("<figure>")
    assert "judge efficientnet_lite2: 100%" in figures[1]
    assert "judge" not in figures[2]


def test_gallery_command_and_its_user_errors(tmp_path: Path) -> None:
    sweep = fake_sweep(tmp_path / "sweep", COLOURS)
    done = subprocess.run([sys.executable, GALLERY, str(sweep)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(sweep / "gallery.png"), str(sweep / "gallery.html")]
    (tmp_path / "empty").mkdir()
    for folder, message in (
        (tmp_path / "nope", "is not a folder"),
        (tmp_path / "empty", "no jobs"),
    ):
        failed = subprocess.run(
            [sys.executable, GALLERY, str(folder)], capture_output=True, text=True
        )
        assert failed.returncode == 2
        assert failed.stderr.startswith("error: ") and message in failed.stderr
        assert len(failed.stderr.splitlines()) == 1
    with pytest.raises(UserError, match="no jobs"):
        find_jobs(tmp_path / "empty")


@contextlib.contextmanager
def chromium(width: int = 800, height: int = 600) -> Iterator[Any]:
    """A headless Chromium driven by selenium (skips the test where either is missing)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra)")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "no Chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def open_in_browser(page: Path, pictures: int, captions: list[str]) -> None:
    """Load ``page`` in headless Chromium: every picture loaded, captions shown, click opens one."""
    with chromium() as driver:
        driver.get(page.as_uri())
        loaded = driver.execute_script(
            "return Array.from(document.images, i => i.complete && i.naturalWidth > 0)"
        )
        assert loaded == [True] * pictures
        text = driver.find_element("tag name", "main").text
        assert all(caption in text for caption in captions)
        driver.find_element("css selector", "main a").click()
        assert driver.current_url == (page.parent / "0" / "render.png").as_uri()


def fake_deepzoom(job: Path, colour: tuple[int, int, int]) -> None:
    """A gigapixel job's outputs, small: a deep zoom of a flat picture and its viewer, no PNG."""
    pyvips = pytest.importorskip("pyvips")
    flat = pyvips.Image.black(600, 400, bands=3).new_from_image(list(colour)).cast("uchar")
    flat.dzsave(str(job / "render"), **DZI_TILE)
    write_viewer(job)
    (job / "render.png").unlink()


def test_a_job_without_png_shows_its_deep_zoom_and_links_its_viewer(tmp_path: Path) -> None:
    sweep = fake_sweep(tmp_path, COLOURS[:2])
    fake_deepzoom(sweep / "1", COLOURS[1])
    jobs = find_jobs(sweep)
    # Level 8 (150x100) is the largest that is one tile (254 pixels): the thumbnail.
    assert jobs[1].picture == sweep / "1" / "render_files" / "8" / "0_0.jpg"
    assert jobs[0].viewer is None and jobs[1].viewer == sweep / "1" / "viewer.html"
    sheet_path, page_path = write_gallery(sweep)
    with Image.open(sheet_path) as sheet:
        middle = (PAD + (THUMB + PAD) + THUMB // 2, sheet.height - 40 - THUMB // 2 - 8)
        pixel = sheet.convert("RGB").getpixel(middle)
    assert max(abs(a - b) for a, b in zip(pixel, COLOURS[1], strict=True)) <= 3
    text = page_path.read_text()
    assert text.count('href="1/viewer.html"') == 2, "the thumbnail and the zoom link"
    assert "viewer.html" not in text.split("<figure>")[1], "job 0 has no viewer"


def test_the_page_shows_every_picture_in_a_real_browser(tmp_path: Path) -> None:
    _, page = write_gallery(fake_sweep(tmp_path, [*COLOURS, None]))
    open_in_browser(page, 3, [f"objective.channel={n}" for n in range(4)])


@pytest.mark.slow
def test_a_three_job_sweep_with_gallery_true(tmp_path: Path) -> None:
    one_tile = ["tiling.base_size=[64,64]", "trainer.max_steps=1"]
    base = [o for o in TINY if o.split("=")[0] not in {"tiling.base_size", "trainer.max_steps"}]
    tiledream(
        "-m",
        *base,
        *one_tile,
        "objective.channel=0,1,2",
        "+gallery=true",
        f"hydra.sweep.dir={tmp_path}",
    )
    sheet, page = tmp_path / "gallery.png", tmp_path / "gallery.html"
    first = sheet.read_bytes()
    with Image.open(sheet) as png:
        assert png.width >= 3 * THUMB
    # scripts/gallery.py on the same folder writes the same sheet.
    sheet.unlink()
    subprocess.run([sys.executable, GALLERY, str(tmp_path)], check=True, capture_output=True)
    assert sheet.read_bytes() == first
    open_in_browser(page, 3, [f"objective.channel={n}" for n in range(3)])
