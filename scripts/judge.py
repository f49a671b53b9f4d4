"""Judge a class render as the design does (its "How a picture is judged"), from its PNG.

    python scripts/judge.py RENDER.png [RENDER.png ...] [--class-index 309]
                            [--reference FIRST_OCTAVE.png] [--tile 224,224] [--overlap 0.25,0.25]

Prints, for each render, one line per measure of ``render.quality``: the share of windows
classified as the class at every level (the whole image, 2x2, 4x4, ... down to about one
tile); the share of the whole image's class evidence left when the blocks of each level are
shuffled (about 1: a wallpaper of small copies; well below 1: a picture whose class lies in
how its parts are arranged); the finest-octave detail (RMS of what a 2x down-and-up resample
removes); the seam ratio at the tile grid of the canvas's size (1: no seam); with
``--reference`` (a render of the pyramid's first octave alone: the same overrides with
``tiling.base_size`` at that octave's size), the correlation of that first octave with the
render shrunk to its size (1: its composition kept).
"""

from __future__ import annotations

import os
import sys

# scripts/render.py is named like the package: import the package, not that file; the
# repository root instead, for scripts.check_layout.
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != SCRIPTS]
sys.path.insert(0, os.path.dirname(SCRIPTS))

import argparse  # noqa: E402

from render.evaluation import level_name  # noqa: E402
from render.models import efficientnet_lite0  # noqa: E402
from render.quality import (  # noqa: E402
    arrangement_kept,
    composition_kept,
    fine_detail,
    load_picture,
    recognition_by_level,
    seam_ratio,
)
from scripts.check_layout import pair  # noqa: E402
from tiling import TilingModule  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("renders", nargs="+")
    parser.add_argument("--class-index", type=int, default=309, help="ImageNet class (309: bee)")
    parser.add_argument("--reference", help="the first octave rendered alone")
    parser.add_argument("--tile", default="224,224")
    parser.add_argument("--overlap", default="0.25,0.25")
    args = parser.parse_args()
    model = efficientnet_lite0()
    tile = pair(args.tile, int)
    label = model.labels[args.class_index] if model.labels else str(args.class_index)
    for path in args.renders:
        canvas = load_picture(path)
        height, width = canvas.shape[-2:]
        tiling = TilingModule(
            tile_size=tile, tile_overlap=pair(args.overlap, float), base_size=[height, width]
        )
        levels = recognition_by_level(model, canvas, args.class_index, tile)
        kept = arrangement_kept(model, canvas, args.class_index, tile)
        print(f"{path} ({width}x{height}, class {args.class_index} {label}):")
        print(
            "  recognised: "
            + ", ".join(
                f"{level_name(k, (width, height))}: {100 * v:.0f}%" for k, v in levels.items()
            )
        )
        unmeant = "" if levels[1] else " (the whole image is not the class: not meaningful)"
        print(
            "  class kept with the blocks shuffled: "
            + (", ".join(f"{k}x{k}: {v:.2f}" for k, v in kept.items()) or "no level below whole")
            + unmeant
        )
        print(f"  finest-octave detail: {fine_detail(canvas):.4f}")
        print(f"  seam ratio at the tile grid: {seam_ratio(canvas, tiling):.3f}")
        if args.reference:
            kept_first = composition_kept(load_picture(args.reference), canvas)
            print(f"  first octave's composition kept (correlation): {kept_first:.3f}")


if __name__ == "__main__":
    main()
