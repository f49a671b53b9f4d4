"""Deep dream side by side: the classic DeepDream loop and the tiled render, in one run.

    python scripts/dream_compare.py PHOTO [--size 1024] [--layer blocks.3.2] [--out DIR]
                                    [-- HYDRA_OVERRIDES ...]

Both dream the same photo at the same size with the same model (the embedded
EfficientNet-Lite0) and layer, in this process, one after the other:

- **classic**: google/deepdream's loop on the whole image: octaves of 1.4 (4 by default),
  10 gradient-ascent steps per octave on the layer's mean squared activation, each step
  ``1.5 / 255 * g / mean(|g|)`` in pixel units after a random roll (jitter 32), the detail
  added at each octave carried to the next.
- **tiled**: ``render.run.render`` with ``experiment=deepdream_photo`` and the photo, plus any
  overrides given after ``--``.

Printed for each: wall time and process CPU time (of the dreaming itself, the tiled render's
outputs included; the model is built once before either; CPU time is steadier on a busy machine),
the layer's mean squared activation on the whole result over that of the photo (the "gain",
measured on the whole image in one forward pass), and how well the photo's composition is
kept: the mean absolute difference to the photo after a 16x downscale (0 to 1). The tiled
render should gain at least as much, keep the photo as well, and take at most twice as long.
"""

from __future__ import annotations

import os
import sys

# scripts/render.py is named like the package: import the package, not that file.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torchvision.transforms.v2.functional as TF  # noqa: E402
from torch import Tensor  # noqa: E402

from render.config import compose_config  # noqa: E402
from render.models import FeatureModel, efficientnet_lite0  # noqa: E402
from render.outputs import save_png  # noqa: E402
from render.quality import load_picture  # noqa: E402
from render.run import render  # noqa: E402

#: google/deepdream's step size, in its 0..255 pixel units.
CLASSIC_STEP = 1.5 / 255
#: The downscale at which a dream must still look like its photo.
COMPOSITION_SCALE = 16


@dataclass
class Dream:
    """One dreamed image and what it took."""

    name: str
    image: Tensor
    seconds: float
    cpu_seconds: float


def load_photo(path: Path, size: tuple[int, int]) -> Tensor:
    """The photo as ``[1, 3, H, W]`` in [0, 1], resized to ``size``."""
    return TF.resize(load_picture(path), list(size), antialias=True).clamp(0, 1)


def classic_dream(
    model: FeatureModel,
    layer: str,
    photo: Tensor,
    *,
    octaves: int = 4,
    scale: float = 1.4,
    steps: int = 10,
    step_size: float = CLASSIC_STEP,
    jitter: int = 32,
    seed: int = 0,
) -> Tensor:
    """google/deepdream's ``deepdream()``: whole image, rolled, normalised steps, octave detail."""
    generator = torch.Generator().manual_seed(seed)
    bases = [photo]
    for _ in range(octaves - 1):
        h, w = bases[-1].shape[-2:]
        bases.append(
            TF.resize(bases[-1], [round(h / scale), round(w / scale)], antialias=True).clamp(0, 1)
        )
    detail = torch.zeros_like(bases[-1])
    image = bases[-1]
    for base in reversed(bases):
        detail = TF.resize(detail, list(base.shape[-2:]), antialias=True)
        image = (base + detail).clamp(0, 1)
        for _ in range(steps):
            dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
            rolled = image.roll((dy, dx), dims=(-2, -1)).requires_grad_(True)
            score = model.capture(rolled, [layer])[layer].square().mean()
            (grad,) = torch.autograd.grad(score, rolled)
            with torch.no_grad():
                rolled = rolled + step_size / (grad.abs().mean() + 1e-8) * grad
                image = rolled.roll((-dy, -dx), dims=(-2, -1)).clamp(0, 1).detach()
        detail = image - base
    return image


def tiled_dream(
    photo_path: Path, size: tuple[int, int], layer: str, overrides: Sequence[str]
) -> Tensor:
    """``experiment=deepdream_photo`` through ``render.run.render``; the canvas it writes."""
    cfg = compose_config(
        [
            "experiment=deepdream_photo",
            f"init.path={photo_path}",
            f"tiling.base_size=[{size[0]},{size[1]}]",
            f"objective.layer={layer}",
            "trainer.enable_progress_bar=false",
            *overrides,
        ]
    )
    with tempfile.TemporaryDirectory(prefix="dream_compare_") as tmp:
        return load_picture(render(cfg, Path(tmp)))


@torch.no_grad()
def layer_energy(model: FeatureModel, layer: str, image: Tensor) -> float:
    """The layer's mean squared activation over the whole image (one forward pass)."""
    return float(model.capture(image, [layer])[layer].square().mean())


def composition_error(image: Tensor, photo: Tensor, factor: int = COMPOSITION_SCALE) -> float:
    """Mean absolute difference of the two images after a ``factor``x downscale."""
    h, w = photo.shape[-2:]
    small = [max(1, h // factor), max(1, w // factor)]
    return float(
        (TF.resize(image, small, antialias=True) - TF.resize(photo, small, antialias=True))
        .abs()
        .mean()
    )


def parse_with_overrides(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """``parser``'s options from ``argv`` (default: the command line) up to ``--``; what follows
    ``--`` is ``overrides`` (Hydra's, for the render); a ``--size H`` becomes ``[H, H]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.overrides = argv[split + 1 :]
    if len(args.size) == 1:
        args.size = args.size * 2
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; everything after ``--`` goes to the tiled render as overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--size", type=int, nargs="+", default=[1024], help="H [W]")
    parser.add_argument("--layer", default="blocks.3.2")
    parser.add_argument("--octaves", type=int, default=4, help="classic loop's octaves")
    parser.add_argument("--steps", type=int, default=10, help="classic loop's steps per octave")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=None, help="write the images here")
    return parse_with_overrides(parser, argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Dream both ways and print one markdown table."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.photo.is_file():
        sys.exit(f"error: {args.photo} is not a file; give a photo (PNG, JPEG, ...)")
    size = (args.size[0], args.size[1])
    model = efficientnet_lite0()
    photo = load_photo(args.photo, size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model_dev = model.to(device)

    start, cpu = time.perf_counter(), time.process_time()
    classic = classic_dream(
        model_dev, args.layer, photo.to(device), octaves=args.octaves, steps=args.steps
    ).cpu()
    dreams = [
        Dream(
            "classic DeepDream loop (whole image)",
            classic,
            time.perf_counter() - start,
            time.process_time() - cpu,
        )
    ]
    start, cpu = time.perf_counter(), time.process_time()
    tiled = tiled_dream(args.photo, size, args.layer, args.overrides)
    dreams.append(
        Dream(
            "tiled (experiment=deepdream_photo)",
            tiled,
            time.perf_counter() - start,
            time.process_time() - cpu,
        )
    )

    model = model.cpu()
    before = layer_energy(model, args.layer, photo)
    print(
        f"\n{size[0]}x{size[1]}, {args.photo.name}, layer {args.layer}, "
        f"{'CUDA ' + torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, "
        f"{torch.get_num_threads()} threads; tiled overrides: {' '.join(args.overrides) or 'none'}"
        f"\n\n| dream | wall (s) | process CPU (s) | layer gain (mean squared activation / "
        f"photo's) | difference to the photo at 1/{COMPOSITION_SCALE} |\n|---|---|---|---|---|"
    )
    for dream in dreams:
        gain = layer_energy(model, args.layer, dream.image) / before
        print(
            f"| {dream.name} | {dream.seconds:.1f} | {dream.cpu_seconds:.1f} | {gain:.2f}x | "
            f"{composition_error(dream.image, photo):.3f} |"
        )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            name = "classic" if dream.name.startswith("classic") else "tiled"
            save_png(dream.image, args.out / f"{name}.png")
    ratio = dreams[1].seconds / dreams[0].seconds
    cpu_ratio = dreams[1].cpu_seconds / dreams[0].cpu_seconds
    print(f"\ntiled / classic time: {ratio:.2f} wall, {cpu_ratio:.2f} process CPU")


if __name__ == "__main__":
    main()
