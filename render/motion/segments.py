"""Segments of a dreamed video: its frames cut into ``video.segments`` runs of consecutive
frames, each rendered by its own process or sweep job, joined into one MP4 by ``tiledream join``.

Segment ``k`` keeps frames ``[k F / N, (k + 1) F / N)`` of the ``F`` frames. It starts
``video.settle`` frames earlier, dreamed as the video's first frame is (from that input frame)
and then carried along the flow like every later frame. A dream depends on its history: two
segments' dreams of one frame differ as two seeds' do, and a cut from one to the other jumps (on
a pan of known motion, three times the frame-to-frame change inside a segment). So the join
cross-fades over the settling frames, from the segment before (which made them too) to this
one, whose dream has moved with the scene since its start. Segment 0 needs no settling: its
frames are the one-process video's.

Only ``init=video`` has segments: a zoom's or a morph's frame starts from the frame before it,
which another segment has not made yet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig
from PIL import Image

from render.checkpoints import IGNORED_KEYS, config_changes, describe_changes
from render.errors import UserError
from render.motion.decode import add_audio
from render.motion.encode import write_mp4
from render.motion.folder import FRAMES, RECORD, frame_path
from render.motion.video import VideoInit
from render.recipe import read_recipe

log = logging.getLogger(__name__)

#: What may differ between the recorded configs of the segments of one video: which segment it
#: is, and how each job was started and run.
MAY_DIFFER = (*IGNORED_KEYS, "video.segment", "trainer")


@dataclass(frozen=True)
class Segment:
    """The frames one render of a video makes: it dreams ``[first, stop)`` and keeps
    ``[start, stop)``."""

    index: int
    count: int
    first: int
    start: int
    stop: int

    @classmethod
    def of(cls, frames: int, count: int, index: int, settle: int) -> Segment:
        """Segment ``index`` of ``count`` of a video of ``frames`` frames, settling for
        ``settle`` frames; a UserError naming the values when they do not make one."""
        if not 0 <= index < count:
            raise UserError(
                f"video.segment must be in [0, video.segments) = [0, {count}), got {index}"
            )
        if count > frames:
            raise UserError(
                f"video.segments={count} is more than the video's {frames} frames: a segment "
                f"holds at least one frame"
            )
        start, stop = index * frames // count, (index + 1) * frames // count
        return cls(index, count, max(0, start - settle), start, stop)

    @classmethod
    def from_config(cls, video: DictConfig, init: object) -> Segment:
        """The segment ``video`` (a config's ``video`` section, its frames known) renders
        from ``init`` (the built ``init``); a UserError when it cannot be cut."""
        if video.segments > 1 and not isinstance(init, VideoInit):
            raise UserError(
                f"video.segments={video.segments} cuts a dreamed video (init=video): each frame "
                f"of a zoom or a morph starts from the frame before it, which another segment "
                f"has not made; render it in one process (video.segments=1)"
            )
        return cls.of(int(video.frames), int(video.segments), int(video.segment), int(video.settle))

    @property
    def kept(self) -> tuple[int, int]:
        """``(start, stop)``: the frames this segment gives the video."""
        return (self.start, self.stop)

    @property
    def whole(self) -> bool:
        """Whether this is the whole video (one segment)."""
        return self.count == 1

    def describe(self) -> str:
        """``segment 2 of 4 (frames 12 to 17, settled from frame 9)``."""
        settled = f", settled from frame {self.first}" if self.first < self.start else ""
        return (
            f"segment {self.index} of {self.count} (frames {self.start} to {self.stop - 1}"
            f"{settled})"
        )


@dataclass(frozen=True)
class Part:
    """A segment's run folder and what it recorded."""

    run_dir: Path
    config: dict[str, Any]
    segment: Segment


def find_parts(paths: list[Path]) -> list[Part]:
    """The segments' run folders among ``paths`` (run folders, or folders holding them such as
    a sweep's), each with its frames' record, in segment order; UserError when one is
    missing, doubled or made with another config."""
    runs: list[Path] = []
    for path in paths:
        if (path / FRAMES / RECORD).is_file():
            runs.append(path)
        elif path.is_dir():
            runs += sorted(p for p in path.iterdir() if (p / FRAMES / RECORD).is_file())
        else:
            raise UserError(f"{path} is not a folder")
    if not runs:
        raise UserError(
            f"no video segments in {', '.join(map(str, paths))}: a segment's run folder holds "
            f"{FRAMES}/{RECORD}"
        )
    parts = []
    for run in runs:
        config = yaml.safe_load((run / FRAMES / RECORD).read_text())
        segment = Segment.of(
            int(config["video.frames"]),
            int(config["video.segments"]),
            int(config["video.segment"]),
            int(config["video.settle"]),
        )
        parts.append(Part(run, config, segment))
    parts.sort(key=lambda p: p.segment.index)
    _check_parts(parts)
    return parts


def _check_parts(parts: list[Part]) -> None:
    count = parts[0].segment.count
    indices = [p.segment.index for p in parts]
    if sorted(set(indices)) != list(range(count)) or len(indices) != count:
        missing = sorted(set(range(count)) - set(indices))
        doubled = sorted({i for i in indices if indices.count(i) > 1})
        raise UserError(
            f"the segments of a video of video.segments={count} are 0 to {count - 1}; found "
            f"{indices} in {', '.join(str(p.run_dir) for p in parts)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (more than one of {doubled})" if doubled else "")
        )
    first = parts[0]
    for part in parts[1:]:
        changes = config_changes(first.config, part.config, MAY_DIFFER)
        if changes:
            raise UserError(
                f"{part.run_dir} is not a segment of the video of {first.run_dir}: "
                f"{describe_changes(changes)}"
            )


def joined_frames(parts: list[Part]) -> Iterator[tuple[Path, Path | None, float]]:
    """The video's frames from ``parts`` (in segment order): ``(frame, next_frame, weight)``,
    ``next_frame`` being the next segment's settling frame at the same time (None outside the
    cross-fades) and ``weight`` its share, rising over the settling frames."""
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        for t in range(*part.segment.kept):
            own = frame_path(part.run_dir, t)
            if following is None or t < following.segment.first:
                yield own, None, 0.0
                continue
            fade = following.segment.start - following.segment.first + 1
            weight = (t - following.segment.first + 1) / fade
            yield own, frame_path(following.run_dir, t), weight


def cross_faded(frames: Iterable[tuple[Path, Path | None, float]]) -> Iterator[Image.Image]:
    """Each of :func:`joined_frames`' frames as a picture, cross-faded where it is two."""
    for own, other, weight in frames:
        with Image.open(own) as first:
            if other is None:
                yield first.convert("RGB")
                continue
            with Image.open(other) as second:
                yield Image.blend(first.convert("RGB"), second.convert("RGB"), weight)


def join(paths: list[Path], out: Path | None = None) -> Path:
    """Encode the frames of every segment found in ``paths`` (:func:`find_parts`),
    cross-faded over the settling frames, into ``out`` (default: ``render.mp4`` in the folder
    holding the segments' run folders) with the input video's audio track. Returns ``out``."""
    parts = find_parts(paths)
    frames = list(joined_frames(parts))
    files = [f for own, other, _ in frames for f in (own, other) if f is not None]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} frame(s) of the video are not made yet, the first {missing[0]}: "
            f"finish its segment (resume=true continues it) before the join"
        )
    if out is None:
        out = parts[0].run_dir.parent / "render.mp4"
    config = parts[0].config
    # The recipe of segment 0 (its first frame): it names video.segments, and replaying it
    # renders that segment.
    recipe = read_recipe(files[0])
    fps, crf = float(config["video.fps"]), int(config["video.crf"])
    written = write_mp4(cross_faded(frames), out, fps, crf, comment=recipe.text)
    log.info("joined %d segments: %d frames into %s", len(parts), written, out)
    if add_audio(out, config["init.path"]):
        log.info("copied the audio track of %s into %s", config["init.path"], out)
    return out
