"""How a video came out: per frame, how much it was dreamed and whether tiles show; a contact sheet.

    python scripts/video_measure.py RUN_DIR [--layer blocks.3.2] [--sheet sheet.jpg]
                                    [--every 6] [--columns 4] [--width 1024]
                                    [--mp4 small.mp4] [--mp4-size 256] [--crf 28]

RUN_DIR is the run folder of a video (``frames/`` and ``render.mp4``, whose recipe gives the
config). Printed as one markdown table:

- **seconds per frame**, from the run's log (``video: N frame(s) in S s``);
- **gain over its start**: the layer's mean squared activation on each frame over that on the
  picture the frame started from (frame 0: the photo; later frames: the frame before, as saved,
  moved by the video's zoom, rotation and drift), as ``scripts/dream_compare.py`` measures a
  dream against its photo;
- **gain over the undreamed view** (a zoom from a photo without drift): the same against the
  photo seen through the same camera move, undreamed (zoomed ``zoom ** t`` in one resample);
- **seam ratio** of each frame (render/quality.py ``seam_ratio``: 1 is no seam);
- with ``--classes``, the class the model reads in each whole frame (a morph's ends are its
  classes), with EfficientNet-Lite2's too (a network that never rendered it).

``--sheet`` writes every ``--every``-th frame (and the last) as a contact sheet
(``torchvision.utils.make_grid``), ``--width`` pixels wide; ``--mp4`` the video again with frames
of ``--mp4-size`` pixels at ``--crf`` (a small copy for a web page).
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
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torchvision.transforms.v2.functional as TF  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from render.config import build  # noqa: E402
from render.models import efficientnet_lite2  # noqa: E402
from render.motion.encode import write_mp4  # noqa: E402
from render.motion.folder import VIDEO, frame_path  # noqa: E402
from render.motion.frames import ZoomStarts  # noqa: E402
from render.motion.zoom import move  # noqa: E402
from render.outputs import fit_within, save_png, to_pil  # noqa: E402
from render.quality import classify, load_picture, seam_ratio  # noqa: E402
from render.recipe import read_recipe  # noqa: E402
from render.run import make_tiling  # noqa: E402
from scripts.dream_compare import layer_energy  # noqa: E402

_PER_FRAME = re.compile(r"video: (\d+) frame\(s\) in ([\d.]+) s")


def seconds_per_frame(log: Path) -> float | None:
    """Seconds per frame of the run's last stretch of frames (a resumed video logs several)."""
    found = _PER_FRAME.findall(log.read_text()) if log.is_file() else []
    frames, seconds = sum(int(n) for n, _ in found), sum(float(s) for _, s in found)
    return seconds / frames if frames else None


def summary(values: Sequence[float]) -> str:
    """``min / median / max`` of ``values``."""
    if not values:
        return "n/a"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Measure the video of a run folder and print one markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--layer", default=None, help="default: the objective's layer")
    parser.add_argument("--sheet", type=Path, default=None, help="write a contact sheet here")
    parser.add_argument("--every", type=int, default=6, help="frames between the sheet's")
    parser.add_argument("--columns", type=int, default=4, help="the sheet's columns")
    parser.add_argument("--width", type=int, default=1024, help="the sheet's width in pixels")
    parser.add_argument("--classes", action="store_true", help="print each frame's class")
    parser.add_argument("--mp4", type=Path, default=None, help="write a small copy of the video")
    parser.add_argument("--mp4-size", type=int, default=256, help="its frames' longer side")
    parser.add_argument("--crf", type=int, default=28, help="its quality (x264's crf)")
    args = parser.parse_args(argv)
    cfg = OmegaConf.create(dict(read_recipe(args.run_dir / VIDEO).config))
    layer = args.layer or cfg.objective.get("layer")
    if layer is None:
        sys.exit("error: the objective has no layer; give --layer")
    model = build(cfg.model).eval()
    count = int(cfg.video.frames)
    frames = [load_picture(frame_path(args.run_dir, t)) for t in range(count)]
    size = (frames[0].shape[-2], frames[0].shape[-1])
    photo = build(cfg.init).canvas(size) if cfg.init.get("path") else None
    starts = ZoomStarts(cfg.video)
    video = cfg.video
    tiling = make_tiling(cfg.tiling, size)
    over_start, over_view, seams = [], [], []
    for t, frame in enumerate(frames):
        energy = layer_energy(model, layer, frame)
        start = photo if t == 0 else starts(t, frames[t - 1])
        if start is not None:
            over_start.append(energy / layer_energy(model, layer, start))
        if photo is not None and not any(video.drift):
            view = move(photo, video.zoom**t, video.rotate * t, (0.0, 0.0), list(video.center))
            over_view.append(energy / layer_energy(model, layer, view))
        seams.append(seam_ratio(frame, tiling))
    per_frame = seconds_per_frame(args.run_dir / "render.log")
    print(
        f"\n{count} frames of {size[0]}x{size[1]}, layer {layer}, video.zoom={video.zoom}, "
        f"video.updates_per_frame={video.updates_per_frame}\n\n"
        f"| seconds per frame | gain over its start (min / median / max) | gain over the "
        f"undreamed view | seam ratio |\n|---|---|---|---|\n"
        f"| {'n/a' if per_frame is None else f'{per_frame:.1f}'} | {summary(over_start)} | "
        f"{summary(over_view)} | {summary(seams)} |"
    )
    if len(over_start) > 1:
        print(f"\ngain over its start, frames 1 on: {summary(over_start[1:])}")
    if args.classes:
        batch = torch.cat(frames)
        for name, judge in (
            ("rendering model", model),
            ("EfficientNet-Lite2", efficientnet_lite2()),
        ):
            top = classify(judge, batch, judge.input_size).argmax(dim=1).tolist()
            print(f"\nclass of each frame ({name}): {' '.join(map(str, top))}")
    if args.sheet:
        chosen = sorted({*range(0, count, args.every), count - 1})
        grid = make_grid(torch.cat([frames[t] for t in chosen]), nrow=args.columns, padding=4)
        height = round(grid.shape[-2] * args.width / grid.shape[-1])
        sheet = TF.resize(grid, [height, args.width], antialias=True).clamp(0, 1)
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        to_pil(sheet).save(args.sheet, quality=90)
        print(f"\nwrote {args.sheet}: frames {', '.join(map(str, chosen))}")
    if args.mp4:
        small = fit_within(size, args.mp4_size)
        with tempfile.TemporaryDirectory(prefix="video_measure_") as folder:
            paths = [Path(folder) / f"{t:05d}.png" for t in range(count)]
            for frame, path in zip(frames, paths, strict=True):
                save_png(TF.resize(frame, list(small), antialias=True).clamp(0, 1), path)
            write_mp4(paths, args.mp4, float(video.fps), args.crf)
        print(f"wrote {args.mp4}: {small[1]}x{small[0]}, {args.mp4.stat().st_size // 1024} kB")


if __name__ == "__main__":
    main()
