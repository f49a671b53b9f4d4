"""The blended-tiling README's 12-colour example, unchanged except for the import line.

    python scripts/tiles_example.py [--out outputs/tiles_example]

Writes ``tiles.png`` (the blended tiles), ``tiles_borders.png`` (with tile borders) and the
animation ``tiles.gif`` (tiles added one by one) into ``--out``.
"""

import argparse
import os

import torch
from torchvision.transforms import ToPILImage

from tiling import TilingModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/tiles_example")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.chdir(args.out)

    # --- the reference README's example, verbatim from here on ---
    # Setup TilingModule instance
    full_size = [768, 1014]
    tile_size = [256, 448]
    tile_overlap = [0.25, 0.25]
    tiling_module = TilingModule(
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        base_size=full_size,
    )

    # Create unique colors for tiles
    tile_colors = [
        [0.5334, 0.0, 0.8459],
        [0.0, 1.0, 0.0],
        [0.0, 0.7071, 0.7071],
        [0.7071, 0.7071, 0.0],
        [1.0, 0.0, 0.0],
        [0.8459, 0.0, 0.5334],
        [0.7071, 0.0, 0.7071],
        [0.0, 0.8459, 0.5334],
        [0.5334, 0.8459, 0.0],
        [0.0, 0.5334, 0.8459],
        [0.0, 0.0, 1.0],
        [0.8459, 0.5334, 0.0],
    ]
    tile_colors = torch.as_tensor(tile_colors).view(12, 3, 1, 1)

    # Create tiles
    tiles = torch.ones([tiling_module.num_tiles(), 3] + tile_size)

    # Color tiles
    tiles = tiles * tile_colors

    tiles = tiles * tiling_module.get_tile_masks()

    # Build full tiled image
    output = tiling_module.rebuild(tiles)
    ToPILImage()(output[0]).save("tiles.png")

    # Build full tiled image
    output = tiling_module.rebuild(tiles, border=2, colors=[0, 0, 0])
    ToPILImage()(output[0]).save("tiles_borders.png")

    tile_steps = [tiling_module.rebuild(tiles[: i + 1]) for i in range(tiles.shape[0])]
    tile_frames = [
        ToPILImage()(x[0])
        for x in [torch.zeros_like(tile_steps[0])] + tile_steps + [tile_steps[-1]]
    ]
    tile_frames[0].save(
        "tiles.gif",
        format="GIF",
        append_images=tile_frames[1:],
        save_all=True,
        duration=700,
        loop=0,
    )
    print(f"wrote tiles.png, tiles_borders.png and tiles.gif to {os.getcwd()}")


if __name__ == "__main__":
    main()
