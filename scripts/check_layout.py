"""Measure a render whose objective changes across the canvas (docs/guide/spatial.md).

    python scripts/check_layout.py RENDER.png --grid 1x3 [--classes 1,309] [--mask MASK.png]
                                   [--layer LAYER] [--tile 224,224] [--overlap 0.25,0.25]

Prints, for each window of a rows x columns grid (row by row, each resized to the model's input),
the embedded model's top class with its probability (and the probabilities of ``--classes``);
with ``--layer`` (an atlas of that layer's first channels, one per window), for each channel the
window where its mean activation, standardised over the windows, is highest; the seam ratio at
the tile grid of the canvas's size, over the mean pixel step and over the
steps within 4 pixels of the edges (1: no seam); with ``--mask``, the ratio of
the mean pixel step where the mask's colour is a mix (the border of two regions) to the mean
step everywhere (1: nothing is cut there).
"""

from __future__ import annotations

import os
import sys

# scripts/render.py is named like the package: import the package, not that file.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402

import torch  # noqa: E402
import torchvision.transforms.v2.functional as TF  # noqa: E402

from render.models import FeatureModel, efficientnet_lite0  # noqa: E402
from render.quality import (  # noqa: E402
    classify,
    load_picture,
    seam_ratio,
    step_ratio_where,
    windows,
)
from tiling import TilingModule  # noqa: E402

#: A mask pixel this far (0..255) from every pure colour of the mask is on a border.
BORDER = 24.0


def border_of(mask_path: str, size: tuple[int, int]) -> torch.Tensor:
    """[H, W] True where the mask, stretched to ``size``, is a mix of its two commonest colours."""
    pixels = load_picture(mask_path)[0].permute(1, 2, 0).reshape(-1, 3) * 255
    colours, counts = pixels.round().unique(dim=0, return_counts=True)
    pure = colours[counts.argsort(descending=True)[:2]]
    far = (pixels[:, None] - pure[None]).norm(dim=-1).min(dim=1).values > BORDER
    mask = far.reshape(1, 1, *load_picture(mask_path).shape[-2:]).float()
    return TF.resize(mask, list(size), antialias=False)[0, 0] > 0.5


@torch.no_grad()
def own_windows(
    model: FeatureModel, canvas: torch.Tensor, layer: str, rows: int, columns: int
) -> str:
    """For channel c of ``layer`` in window c (an atlas), the window where c is strongest."""
    count = rows * columns
    acts = model.capture(windows(canvas, rows, columns), [layer])[layer][:, :count]
    means = acts.mean(dim=(2, 3))
    strongest = ((means - means.mean(0)) / means.std(0)).argmax(0).tolist()
    own = sum(w == c for c, w in enumerate(strongest))
    return (
        f"channels strongest in their own window: {own} of {count} "
        f"(window per channel: {strongest})"
    )


def pair(text: str, kind: type) -> list:
    return [kind(v) for v in text.replace("x", ",").split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("render")
    parser.add_argument("--grid", default="1x3", help="rows x columns of windows (1x3)")
    parser.add_argument("--classes", default="", help="class indices to report (1,309)")
    parser.add_argument("--mask", help="the mask of objective=mask")
    parser.add_argument("--layer", help="objective=atlas of this layer's channels 0, 1, ...")
    parser.add_argument("--tile", default="224,224")
    parser.add_argument("--overlap", default="0.25,0.25")
    args = parser.parse_args()
    canvas = load_picture(args.render)
    model = efficientnet_lite0()
    rows, columns = pair(args.grid, int)
    probs = classify(model, windows(canvas, rows, columns)).softmax(dim=1)
    wanted = pair(args.classes, int) if args.classes else []
    for index, p in enumerate(probs):
        top = int(p.argmax())
        extra = "".join(f", p({c})={float(p[c]):.3f}" for c in wanted)
        label = model.labels[top] if model.labels else str(top)
        print(
            f"window {index // columns},{index % columns}: {top} {label} {float(p[top]):.3f}{extra}"
        )
    if args.layer:
        print(own_windows(model, canvas, args.layer, rows, columns))
    height, width = canvas.shape[-2:]
    tiling = TilingModule(
        tile_size=pair(args.tile, int),
        tile_overlap=pair(args.overlap, float),
        base_size=[height, width],
    )
    print(
        f"seam ratio at the tile grid: {seam_ratio(canvas, tiling):.3f} (over the mean step), "
        f"{seam_ratio(canvas, tiling, reach=4):.3f} (over the steps within 4 pixels)"
    )
    if args.mask:
        border = border_of(args.mask, (height, width))
        print(f"step ratio at the mask's border: {step_ratio_where(canvas, border):.3f}")


if __name__ == "__main__":
    main()
