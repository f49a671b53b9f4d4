"""A dreamed video with optical flow against frames dreamed independently, on a clip whose
motion is known.

    python scripts/video_compare.py [PHOTO] [--size 256] [--seconds 3] [--fps 8]
                                    [--shift 2 0] [--zoom 1.0] [--layer blocks.3.2]
                                    [--updates 10] [--reliable 0.9] [--unreliable 0.2]
                                    [--segments COUNT SETTLE] [--out DIR]
                                    [-- HYDRA_OVERRIDES ...]

The clip pans (``--shift`` dx dy frame pixels a frame) and zooms (``--zoom`` a frame) across
PHOTO (default: Chelsea the cat, shipped with the configs), with a sine tone as its audio track
(render/motion/synthetic.py). It is dreamed twice with ``experiment=deepdream_photo``:

- **with flow**: ``init=video`` (the frame loop: frame 0 dreamed as a photo, every later frame
  started from the previous dream moved by the flow and blended with its input frame, then
  dreamed for ``--updates`` updates of every tile);
- **independent**: every frame dreamed alone as a photo, as frame 0 is (same seed), the way
  videos were dreamed before optical flow.

With ``--segments COUNT SETTLE`` it is dreamed a third time, with flow in COUNT segments
(``video.segments``, each settling for SETTLE frames, ``video.settle``) rendered one after the
other and joined as ``tiledream join`` joins them; the instability at the joins is printed beside
the instability inside the segments and the one-process video's at the same frames.

Printed: the instability of each (mean absolute difference between frame t + 1 and frame t moved
by the true motion, render/motion/stability.py) and of the input frames (the floor resampling
leaves), the layer gain per frame (``scripts/dream_compare.py``'s measure: the layer's mean
squared activation over that of the input frame), the seconds per frame, and whether
``render.mp4`` kept the audio track at the input's length. Overrides after ``--`` go to every
dream. ``--out`` keeps the clip, each dream's frames and video and ``sheet.png`` (rows: the
input, independent, with flow, in segments; columns: five frames across the clip).
``--no-independent`` skips the independent dreams.
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
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from torch import Tensor  # noqa: E402
from torchvision.transforms.functional import pil_to_tensor  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from render.config import compose_config, find_shipped  # noqa: E402
from render.models import efficientnet_lite0  # noqa: E402
from render.motion.decode import add_audio, read_frames  # noqa: E402
from render.motion.encode import write_mp4  # noqa: E402
from render.motion.segments import cross_faded, find_parts, join, joined_frames  # noqa: E402
from render.motion.stability import instability  # noqa: E402
from render.motion.synthetic import PanClip  # noqa: E402
from render.outputs import save_png  # noqa: E402
from render.quality import load_picture  # noqa: E402
from render.run import render  # noqa: E402
from scripts.dream_compare import layer_energy, parse_with_overrides, tiled_dream  # noqa: E402

PHOTO = "configs/photos/chelsea.jpg"


@dataclass
class Dreamed:
    """The frames of one way of dreaming the clip and what they took."""

    name: str
    frames: Tensor
    seconds: float


@dataclass
class Comparison:
    """What :func:`compare` measured."""

    clip: PanClip
    input_instability: float
    dreams: list[Dreamed]
    gains: dict[str, list[float]]
    instabilities: dict[str, float]
    audio_seconds: tuple[float, float]
    """(the input's, render.mp4's) audio length in seconds."""
    fades: tuple[tuple[int, int], ...] = ()
    """``(first, start)`` of each segment after the first of the segmented dream (the last of
    :attr:`dreams`): the join cross-fades over frames ``first`` to ``start - 1``."""

    def pair_instabilities(self, dream: Dreamed) -> list[float]:
        """The instability of ``dream`` from each frame to the next."""
        flow = self.clip.flow()
        return [instability(dream.frames[t : t + 2], flow) for t in range(self.clip.frames - 1)]


def audio_seconds(path: Path) -> float:
    """The length of ``path``'s first audio stream in seconds (0 without one)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


def frames_of(folder: Path) -> Tensor:
    """The PNG frames of a run folder's ``frames/``, ``[T, 3, H, W]``."""
    return torch.cat([load_picture(p) for p in sorted((folder / "frames").glob("*.png"))])


def flow_config(
    clip_path: Path, layer: str, video: Sequence[str], overrides: Sequence[str]
) -> DictConfig:
    """The config of ``init=video`` dreaming ``clip_path``."""
    return compose_config(
        [
            "experiment=deepdream_photo",
            "init=video",
            f"init.path={clip_path}",
            f"objective.layer={layer}",
            "trainer.enable_progress_bar=false",
            *video,
            *overrides,
        ]
    )


def dream_with_flow(
    clip_path: Path, layer: str, video: Sequence[str], overrides: Sequence[str], run_dir: Path
) -> Dreamed:
    """``init=video`` through ``render.run.render``; the frames it saved."""
    cfg = flow_config(clip_path, layer, video, overrides)
    start = time.perf_counter()
    render(cfg, run_dir)
    return Dreamed("with flow (init=video)", frames_of(run_dir), time.perf_counter() - start)


def dream_in_segments(
    clip_path: Path,
    layer: str,
    video: Sequence[str],
    overrides: Sequence[str],
    folder: Path,
    segments: tuple[int, int],
) -> tuple[Dreamed, tuple[int, ...]]:
    """``init=video`` cut into ``segments`` = (count, settle) renders, one after the other
    into ``folder/0``, ``folder/1``, ..., joined into ``folder/render.mp4`` as ``tiledream
    join`` does; the joined frames and the frames where a segment begins."""
    count, settle = segments
    start = time.perf_counter()
    for index in range(count):
        cut = [f"video.segments={count}", f"video.segment={index}", f"video.settle={settle}"]
        render(flow_config(clip_path, layer, [*video, *cut], overrides), folder / str(index))
    join([folder])
    parts = find_parts([folder])
    # The frames the join encodes (cross-faded over the settling frames), before H.264.
    frames = [pil_to_tensor(f)[None] / 255 for f in cross_faded(joined_frames(parts))]
    name = f"with flow in {count} segments (settle {settle})"
    dreamed = Dreamed(name, torch.cat(frames), time.perf_counter() - start)
    return dreamed, tuple((p.segment.first, p.segment.start) for p in parts[1:])


def dream_independently(
    video: Tensor, layer: str, overrides: Sequence[str], folder: Path
) -> Dreamed:
    """Every frame of ``video`` dreamed alone as a photo (``scripts/dream_compare.py``'s tiled
    dream); the frames are written to ``folder/frames/``."""
    size = (video.shape[-2], video.shape[-1])
    dreams = []
    start = time.perf_counter()
    for index, frame in enumerate(video):
        photo = folder / "inputs" / f"{index:05d}.png"
        photo.parent.mkdir(parents=True, exist_ok=True)
        save_png(frame[None], photo)
        dreams.append(tiled_dream(photo, size, layer, overrides))
        save_png(dreams[-1], folder / "frames" / f"{index:05d}.png")
    return Dreamed(
        "independent (each frame a photo)", torch.cat(dreams), time.perf_counter() - start
    )


def compare(
    clip: PanClip,
    layer: str,
    out: Path,
    *,
    updates: float = 10,
    weights: tuple[float, float] = (0.9, 0.2),
    overrides: Sequence[str] = (),
    independent: bool = True,
    segments: tuple[int, int] | None = None,
) -> Comparison:
    """Dream ``clip`` with flow, and independently (``independent``), and with flow in
    ``segments`` = (count, settle) joined segments (when given), into ``out``; measure them."""
    out.mkdir(parents=True, exist_ok=True)
    clip_path = out / "input.mp4"
    clip.write(clip_path)
    video_settings = [
        f"video.updates_per_frame={updates}",
        f"init.reliable={weights[0]}",
        f"init.unreliable={weights[1]}",
    ]
    # The frames as the renders read them: decoded from the clip (H.264 changes them a little).
    video = torch.cat(list(read_frames(clip_path)))
    dreams = [dream_with_flow(clip_path, layer, video_settings, overrides, out / "flow")]
    if independent:
        dreams.append(dream_independently(video, layer, overrides, out / "independent"))
    fades: tuple[tuple[int, int], ...] = ()
    if segments is not None:
        cut, fades = dream_in_segments(
            clip_path, layer, video_settings, overrides, out / "segments", segments
        )
        dreams.append(cut)
    model = efficientnet_lite0()
    flow = clip.flow()
    before = [layer_energy(model, layer, frame[None]) for frame in video]
    gains = {
        d.name: [
            layer_energy(model, layer, f[None]) / b for f, b in zip(d.frames, before, strict=True)
        ]
        for d in dreams
    }
    return Comparison(
        clip,
        instability(video, flow),
        dreams,
        gains,
        {d.name: instability(d.frames, flow) for d in dreams},
        (audio_seconds(clip_path), audio_seconds(out / "flow" / "render.mp4")),
        fades,
    )


def contact_sheet(rows: Sequence[Tensor], columns: int = 5) -> Tensor:
    """``columns`` frames evenly across each of ``rows`` (``[T, 3, H, W]`` each), one row each."""
    count = rows[0].shape[0]
    picked = [round(i * (count - 1) / (columns - 1)) for i in range(columns)]
    cells = [row[index] for row in rows for index in picked]
    return make_grid(torch.stack(cells), nrow=columns, padding=4, pad_value=1.0)[None]


def report(result: Comparison) -> str:
    """The comparison as one markdown table and its notes."""
    clip = result.clip
    lines = [
        f"{clip.frames} frames of {clip.size[0]}x{clip.size[1]} at {clip.fps} fps, "
        f"pan {clip.shift} px and zoom {clip.zoom} a frame; "
        f"{torch.get_num_threads()} threads",
        "",
        "| frames | instability (mean abs. difference to the previous frame moved by the true "
        "motion) | layer gain per frame: min / mean | seconds per frame |",
        "|---|---|---|---|",
        f"| input | {result.input_instability:.4f} | 1.00x / 1.00x | |",
    ]
    for dream in result.dreams:
        gains = result.gains[dream.name]
        lines.append(
            f"| {dream.name} | {result.instabilities[dream.name]:.4f} | {min(gains):.2f}x / "
            f"{sum(gains) / len(gains):.2f}x | {dream.seconds / clip.frames:.1f} |"
        )
    lines.append("")
    flow = result.dreams[0]
    independent = [d for d in result.dreams if d.name.startswith("independent")]
    if independent:
        ratio = result.instabilities[flow.name] / result.instabilities[independent[0].name]
        lines.append(f"with flow / independent instability: {ratio:.2f}")
    if result.fades:
        cut, whole = result.pair_instabilities(result.dreams[-1]), result.pair_instabilities(flow)
        # The pairs from the frame before each cross-fade to its end: where a join shows.
        joins = [t for first, start in result.fades for t in range(max(first - 1, 0), start)]
        lines.append(
            f"segments: largest frame-to-frame instability {max(cut):.4f} (one process "
            f"{max(whole):.4f}); over the joins (frames {result.fades}, cross-faded from the "
            f"first to the second less one) mean {sum(cut[t] for t in joins) / len(joins):.4f} "
            f"(one process {sum(whole[t] for t in joins) / len(joins):.4f})"
        )
    lines.append(
        f"audio: input {result.audio_seconds[0]:.2f} s, render.mp4 {result.audio_seconds[1]:.2f} s"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; everything after ``--`` goes to both dreams as overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", default=PHOTO)
    parser.add_argument("--size", type=int, nargs="+", default=[256], help="H [W]")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--shift", type=float, nargs=2, default=[2.0, 0.0], help="dx dy")
    parser.add_argument("--zoom", type=float, default=1.0)
    parser.add_argument("--layer", default="blocks.3.2")
    parser.add_argument("--updates", type=float, default=10, help="video.updates_per_frame")
    parser.add_argument("--reliable", type=float, default=0.9, help="init.reliable")
    parser.add_argument("--unreliable", type=float, default=0.2, help="init.unreliable")
    parser.add_argument(
        "--segments",
        type=int,
        nargs=2,
        metavar=("COUNT", "SETTLE"),
        help="also dream it in COUNT joined segments (video.segments), each settling for SETTLE "
        "frames (video.settle)",
    )
    parser.add_argument(
        "--no-independent",
        action="store_true",
        help="skip the independent dreams (with --segments: flow in one process against flow "
        "in segments)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=None, help="keep the clip, videos, sheet")
    return parse_with_overrides(parser, argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Dream the clip both ways and print the table."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    photo = find_shipped(args.photo)
    if not photo.is_file():
        sys.exit(f"error: {photo} is not a file; give a photo (PNG, JPEG, ...)")
    clip = PanClip(
        load_picture(photo),
        (args.size[0], args.size[1]),
        round(args.seconds * args.fps),
        args.fps,
        (args.shift[0], args.shift[1]),
        args.zoom,
    )
    with tempfile.TemporaryDirectory(prefix="video_compare_") as tmp:
        out = args.out or Path(tmp)
        result = compare(
            clip,
            args.layer,
            out,
            updates=args.updates,
            weights=(args.reliable, args.unreliable),
            overrides=args.overrides,
            independent=not args.no_independent,
            segments=None if args.segments is None else (args.segments[0], args.segments[1]),
        )
        print("\n" + report(result))
        if args.out:
            flow, *others = result.dreams
            if not args.no_independent:
                independent = out / "independent"
                frames = sorted((independent / "frames").glob("*.png"))
                write_mp4(frames, independent / "render.mp4", clip.fps)
                add_audio(independent / "render.mp4", out / "input.mp4")
            inputs = torch.cat(list(read_frames(out / "input.mp4")))
            rows = [inputs, *(d.frames for d in others if d.name.startswith("independent"))]
            rows += [flow.frames, *(d.frames for d in others if d.name.startswith("with flow"))]
            save_png(contact_sheet(rows), out / "sheet.png")
            shutil.rmtree(out / "flow" / "metrics", ignore_errors=True)
    if args.out:
        print(f"\nwrote {args.out}: input.mp4, the dreams' folders and render.mp4s, sheet.png")


if __name__ == "__main__":
    main()
