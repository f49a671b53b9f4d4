"""Compute a MaCo magnitude spectrum (``param=maco param.spectrum=FILE``) from a folder of photos.

    python scripts/maco_spectrum.py FOLDER --out FILE [--size 256] [--crops 64] [--seed 0]

The spectrum is the mean amplitude of the rfft2 of random square crops of ``--size`` pixels,
per colour channel after Lucid's decorrelation (render.params.maco.image_amplitudes); each
crop comes from the photo shrunk by a random factor (never enlarged, unless the photo is
smaller than a crop). Tiles of another size read it at their own frequencies.
"""

from __future__ import annotations

import os
import sys

# scripts/render.py is named like the package: import the package, not that file.
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != SCRIPTS]
sys.path.insert(0, os.path.dirname(SCRIPTS))

import argparse  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

from render.errors import UserError  # noqa: E402
from render.params.maco import mean_spectrum, save_spectrum  # noqa: E402

PHOTOS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def photos(folder: Path) -> list[Path]:
    """The pictures in ``folder`` (not its subfolders), sorted by name."""
    if not folder.is_dir():
        raise UserError(f"{str(folder)!r} is not a folder")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTOS)
    if not found:
        raise UserError(f"{str(folder)!r} holds no picture ({', '.join(sorted(PHOTOS))})")
    return found


def crops(path: Path, size: int, count: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``count`` random ``size``-pixel square crops of the photo at ``path``, [1, 3, size, size]."""
    with Image.open(path) as opened:
        image = TF.to_dtype(TF.pil_to_tensor(opened.convert("RGB")), torch.float32, scale=True)
    shortest = min(image.shape[-2:])
    for _ in range(count):
        least = size / shortest  # the factor that makes the short side one crop
        factor = least if least >= 1 else least + (1 - least) * torch.rand(1, generator=generator)
        h, w = (max(size, round(float(side * factor))) for side in image.shape[-2:])
        resized = TF.resize(image, [h, w], antialias=True)
        top = int(torch.randint(h - size + 1, (1,), generator=generator))
        left = int(torch.randint(w - size + 1, (1,), generator=generator))
        yield resized[None, :, top : top + size, left : left + size].clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of photos")
    parser.add_argument("--out", type=Path, required=True, help="the spectrum file to write")
    parser.add_argument("--size", type=int, default=256, help="crop size in pixels")
    parser.add_argument("--crops", type=int, default=64, help="random crops per photo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        if args.size < 2 or args.crops < 1:
            raise UserError(f"--size must be >= 2 and --crops >= 1, got {args.size}, {args.crops}")
        found = photos(args.folder)
        generator = torch.Generator().manual_seed(args.seed)
        magnitude = mean_spectrum(
            crop for path in found for crop in crops(path, args.size, args.crops, generator)
        )
    except UserError as error:
        sys.exit(f"error: {error}")
    save_spectrum(args.out, magnitude, (args.size, args.size), [p.name for p in found])
    print(f"{args.out}: the mean spectrum of {args.crops} crops of {args.size} px of", end=" ")
    print(", ".join(p.name for p in found))


if __name__ == "__main__":
    main()
