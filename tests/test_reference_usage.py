"""The reference README's usage code runs unchanged but for the import line."""

import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from tiling import TilingModule

ROOT = Path(__file__).resolve().parents[1]


def test_readme_usage_snippets():
    full_size = [512, 512]
    tile_size = [224, 224]
    tile_overlap = [0.25, 0.25]  # 25% overlap on both H & W

    tiling_module = TilingModule(
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        base_size=full_size,
    )

    # Shape of tiles expected in forward pass
    input_shape = [tiling_module.num_tiles(), 3] + tile_size

    # Tiles are blended together and then split apart by default
    blended_tiles = tiling_module(torch.ones(input_shape))
    torch.testing.assert_close(blended_tiles, torch.ones(input_shape))

    full_tensor = torch.ones(1, 3, 512, 512)

    tiles = tiling_module.split_into_tiles(full_tensor)

    full_tensor = tiling_module.rebuild_with_masks(tiles)
    torch.testing.assert_close(full_tensor, torch.ones(1, 3, 512, 512))

    tiles = torch.ones(9, 3, 224, 224)
    full_tensor = tiling_module.rebuild_with_masks(tiles, border=2)
    assert full_tensor[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]

    num_tiles = tiling_module.num_tiles()

    tiling_pattern = tiling_module.tiling_pattern()
    assert "{}x{}".format(tiling_pattern[0], tiling_pattern[1]) == "3x3"
    assert num_tiles == 9


def test_tiles_example_script_writes_pngs_and_the_animation(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tiles_example.py"), "--out", str(tmp_path)],
        check=True,
    )
    for name in ("tiles.png", "tiles_borders.png"):
        with Image.open(tmp_path / name) as png:
            assert png.size == (1014, 768)
    with Image.open(tmp_path / "tiles.gif") as gif:
        # A blank frame, 12 tiles, and the repeated last frame that pillow folds into one.
        assert gif.n_frames == 1 + 12
        gif.seek(1)  # one tile drawn: the top-left corner is its colour, the rest black
        frame = gif.convert("RGB")
        assert frame.getpixel((1000, 760)) == (0, 0, 0)
        assert frame.getpixel((10, 10)) != (0, 0, 0)
    with Image.open(tmp_path / "tiles_borders.png") as png:
        assert png.convert("RGB").getpixel((0, 0)) == (0, 0, 0)
