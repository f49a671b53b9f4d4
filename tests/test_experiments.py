"""Every preset in configs/experiment/ renders through the real command line, shrunk."""

from pathlib import Path

import pytest
from conftest import ROOT, tiledream
from PIL import Image

PRESETS = sorted(path.stem for path in (ROOT / "configs" / "experiment").glob("*.yaml"))
# Presets that dream on a photo need init.path (and take the photo's size).
ON_A_PHOTO = ["deepdream_photo"]
# Presets that make a video (video.frames > 0): two frames each, pictures in frames/.
VIDEOS = ["morph", "zoom"]
# A tiny canvas and one step per octave; everything else is the preset's.
SHRINK = ["tiling.tile_size=[64,64]", "trainer.max_steps=1", "trainer.accelerator=cpu"]


def sweep(presets: list[str], folder: Path, *overrides: str) -> dict[str, tuple[int, int]]:
    """Render each preset as one job of a multirun; the size of each job's picture, by preset."""
    experiments = f"experiment={','.join(presets)}"
    tiledream("-m", experiments, *SHRINK, *overrides, f"hydra.sweep.dir={folder}")
    sizes = {}
    for job in folder.glob("*/.hydra/overrides.yaml"):
        preset = next(o for o in job.read_text().split() if o.startswith("experiment="))
        run_dir = job.parent.parent
        picture = run_dir / "render.png"
        if not picture.exists():  # a video: its last frame
            assert (run_dir / "render.mp4").is_file(), run_dir
            picture = sorted((run_dir / "frames").glob("*.png"))[-1]
        with Image.open(picture) as png:
            sizes[preset.removeprefix("experiment=")] = png.size
    return sizes


@pytest.mark.slow
def test_every_experiment_preset_renders(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.linear_gradient("L").resize((100, 90)).convert("RGB").save(photo)
    on_noise = [p for p in PRESETS if p not in ON_A_PHOTO + VIDEOS]
    sizes = sweep(on_noise, tmp_path / "noise", "tiling.base_size=[96,96]")
    sizes |= sweep(VIDEOS, tmp_path / "videos", "tiling.base_size=[96,96]", "video.frames=2")
    sizes |= sweep(ON_A_PHOTO, tmp_path / "photo", f"init.path={photo}")
    assert sizes == {p: (100, 90) if p in ON_A_PHOTO else (96, 96) for p in PRESETS}
