"""Part 4: the pyramid, a single-scale tiled render and a whole-image render of one class."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from render.config import compose_config
from render.models import FeatureModel
from render.quality import (
    arrangement_kept,
    fine_detail,
    load_picture,
    recognition_by_level,
    seam_ratio,
    window_levels,
)
from render.run import make_tiling
from scripts.bench.common import MB, RENDER_SCRIPT, machine_line, markdown_table
from scripts.bench.rss import peak_rss_of


def side_by_side_variants(size: int, updates: float) -> dict[str, list[str]]:
    """The three renders of part 4 as Hydra overrides, on one canvas, model and objective.

    The whole-image render (one tile as large as the canvas, as Lucid and Lucent render) gets
    as many pixel updates as the single-scale tiled render: its updates per tile are the tiled
    render's, times the tiles' coverage of the canvas (overlaps count twice there).
    """
    cfg = compose_config([f"tiling.base_size=[{size},{size}]"])
    tiling = make_tiling(cfg.tiling, (size, size))
    tile_h, tile_w = (int(t) for t in cfg.tiling.tile_size)
    coverage = tiling.num_tiles() * tile_h * tile_w / size**2
    return {
        "pyramid (default)": [f"render.updates_per_tile={updates}"],
        "single-scale tiled": ["render.octaves=1", f"render.updates_per_tile={updates}"],
        "whole image (one tile)": [
            f"tiling.tile_size=[{size},{size}]",
            "render.octaves=1",
            "render.tiles_per_step=1",
            f"render.updates_per_tile={updates * coverage:.1f}",
        ],
    }


def judge_png(
    model: FeatureModel, path: Path, class_index: int, tiling: Any, tile: Sequence[int]
) -> dict[str, Any]:
    """The design's measures of one render: recognition per level, the share of the class
    left with the blocks of each level shuffled, fine detail, seams.
    """
    canvas = load_picture(path)
    return {
        "levels": recognition_by_level(model, canvas, class_index, tile),
        "kept": arrangement_kept(model, canvas, class_index, tile),
        "detail": fine_detail(canvas),
        "seams": seam_ratio(canvas, tiling),
    }


def part_side_by_side(model: FeatureModel, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Part 4: pyramid vs single-scale tiled vs whole-image render of one class, in one run.

    Each render is a fresh ``scripts/render.py`` process (wall time and peak RSS from
    ``/usr/bin/time -v``; peak CUDA memory from its log). Each PNG is then judged: the share of
    windows classified as the class at every level (whole image, 2x2, 4x4, ... down to about
    one tile), the finest-octave detail (RMS of what a 2x down-and-up resample removes) and
    the seam ratio on the default tile grid (mean step at tile edges / mean step, 1: none),
    and the share of the whole image's class evidence left when its blocks are shuffled at
    each level below the whole image (about 1: a wallpaper; ``render.quality.arrangement_kept``).
    """
    size, class_index = args.sbs_size, args.sbs_class
    cfg = compose_config([f"tiling.base_size=[{size},{size}]"])
    tile = [int(t) for t in cfg.tiling.tile_size]
    grid = make_tiling(cfg.tiling, (size, size))
    variants = side_by_side_variants(size, args.sbs_updates)
    results = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_render_sbs_") as tmp:
        for name, extra in variants.items():
            run_dir = Path(tmp) / re.sub(r"[^a-z]+", "_", name.lower()).strip("_")
            command = [
                sys.executable,
                str(RENDER_SCRIPT),
                "objective=class_logit",
                f"objective.class_index={class_index}",
                f"tiling.base_size=[{size},{size}]",
                "trainer.enable_progress_bar=false",
                *args.sbs_overrides,
                *extra,
                f"hydra.run.dir={run_dir}",
            ]
            rss, seconds, error = peak_rss_of(command, args.rss_timeout)
            result: dict[str, Any] = {"name": name, "overrides": extra, "seconds": seconds}
            result["rss_mb"] = rss / MB if rss else None
            log_text = "".join(p.read_text() for p in run_dir.glob("*.log"))
            found = re.search(r"peak CUDA memory (\d+) MB", log_text)
            result["cuda_mb"] = float(found.group(1)) if found else None
            png = run_dir / "render.png"
            if error or not png.is_file():
                result["error"] = error or "no render.png"
            else:
                result.update(judge_png(model, png, class_index, grid, tile))
                if args.sbs_out:
                    args.sbs_out.mkdir(parents=True, exist_ok=True)
                    shutil.copy(png, args.sbs_out / f"{run_dir.name}.png")
            results.append(result)
            levels, kept = result.get("levels", {}), result.get("kept", {})
            rows.append(
                [
                    name,
                    f"{seconds:.0f}",
                    result["rss_mb"] or "n/a",
                    result["cuda_mb"] or "n/a",
                    *(
                        f"{100 * levels[k]:.0f}%" if k in levels else "n/a"
                        for k in window_levels((size, size), tile)
                    ),
                    *(
                        f"{kept[k]:.2f}" if k in kept else "n/a"
                        for k in window_levels((size, size), tile)[1:]
                    ),
                    result.get("detail", result.get("error", "n/a")),
                    result.get("seams", "n/a"),
                ]
            )
    levels = window_levels((size, size), tile)
    print(
        f"\n### 4. Side by side: class {class_index} on a {size}x{size} canvas, "
        f"{args.sbs_updates:g} updates per tile (extra overrides: "
        f"{' '.join(args.sbs_overrides) or 'none'})\n"
    )
    print(machine_line() + "\n")
    headers = [
        "render",
        "wall (s)",
        "peak RSS (MB)",
        "peak CUDA (MB)",
        *(f"recognised, {k}x{k} windows of {size // k}" for k in levels),
        *(f"class kept, {k}x{k} blocks shuffled" for k in levels[1:]),
        "finest-octave detail (RMS)",
        "seam ratio",
    ]
    print(markdown_table(headers, rows))
    return results
