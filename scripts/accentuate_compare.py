"""Feature accentuation with and without its keep term, side by side, in one run.

    python scripts/accentuate_compare.py [--out DIR] [-- HYDRA_OVERRIDES ...]

Renders ``experiment=accentuate`` (its photo, target and keep layer, plus the overrides given
after ``--``) twice with the same seed: as configured, and with ``objective.keep_weight=0`` (the
target alone, from the photo: deep dream of the target). Prints, for the photo and each render:
the target on the whole image (one forward pass), the mean distance of the keep layer's
activations to the photo's (the keep term, on the whole image), the difference to the photo
after a 16x downscale (``scripts/dream_compare.py``'s measure) and the time. Accentuation
should raise the target and keep the photo; without the keep term the photo drifts further.
``--out`` writes photo.png, plain.png, accentuated.png and side_by_side.jpg (the three, left
to right).
"""

from __future__ import annotations

import os
import sys

# scripts/render.py is named like the package: import the package, not that file; the
# repository root instead, for scripts.dream_compare.
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != SCRIPTS]
sys.path.insert(0, os.path.dirname(SCRIPTS))

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from torch import Tensor  # noqa: E402

from render.config import build, compose_config  # noqa: E402
from render.models import FeatureModel  # noqa: E402
from render.objectives import Objective, keep_photo  # noqa: E402
from render.objectives.accentuate import photo_activations  # noqa: E402
from render.outputs import save_png, to_pil  # noqa: E402
from render.run import canvas_size, render  # noqa: E402
from scripts.dream_compare import COMPOSITION_SCALE, composition_error, load_photo  # noqa: E402


@torch.no_grad()
def score(model: FeatureModel, objective: Objective, image: Tensor) -> float:
    """``objective`` on the whole image in one forward pass."""
    return float(objective(model.capture(image, sorted(objective.layers)), image))


@torch.no_grad()
def keep_distance(model: FeatureModel, layer: str, image: Tensor, photo: Tensor) -> float:
    """Mean distance of ``layer``'s activations on the whole image to the photo's."""
    activations = model.capture(image, [layer]) | photo_activations(model.capture, photo, [layer])
    return 0.0 - float(keep_photo(layer)(activations, image))  # 0.0, not -0.0, for the photo


def accentuated(cfg: DictConfig, size: tuple[int, int]) -> tuple[Tensor, float]:
    """The canvas ``cfg`` renders (``size``), and the seconds it took."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="accentuate_compare_") as tmp:
        image = load_photo(render(cfg, Path(tmp)), size)
    return image, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    """Render both ways and print one markdown table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the images here")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    given = ["experiment=accentuate", "trainer.enable_progress_bar=false", *overrides]
    cfg = compose_config(given)
    model, objective = build(cfg.model), build(cfg.objective)
    init = build(cfg.init)
    size = canvas_size(cfg, init)
    photo = init.canvas(size)
    target, layer = build(cfg.objective.target), cfg.objective.keep_layer
    rows = [("the photo", photo, 0.0)]
    for name, extra in (
        ("without the keep term", ["objective.keep_weight=0"]),
        (repr(objective), []),
    ):
        rows.append((name, *accentuated(compose_config([*given, *extra]), size)))
    print(
        f"\n{size[0]}x{size[1]}, {Path(cfg.init.path).name}, target {target!r}, keep layer "
        f"{layer}; overrides: {' '.join(overrides) or 'none'}\n\n| image | wall (s) | target "
        f"(whole image) | distance to the photo at {layer} | difference to the photo at "
        f"1/{COMPOSITION_SCALE} |\n|---|---|---|---|---|"
    )
    for name, image, seconds in rows:
        print(
            f"| {name} | {seconds:.1f} | {score(model, target, image):.2f} | "
            f"{keep_distance(model, layer, image, photo):.3f} | "
            f"{composition_error(image, photo):.3f} |"
        )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for file, (_, image, _) in zip(("photo", "plain", "accentuated"), rows, strict=True):
            save_png(image, args.out / f"{file}.png")
        side = torch.cat([image for _, image, _ in rows], dim=-1)
        to_pil(side).save(args.out / "side_by_side.jpg", quality=90)


if __name__ == "__main__":
    main()
