"""A dreamed video cut into segments rendered by separate jobs and joined
(render/motion/segments.py, ``tiledream join``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import VIDEO, tiledream
from hypothesis import given
from hypothesis import strategies as st
from torchvision.transforms.functional import pil_to_tensor

from render.errors import UserError
from render.motion.decode import probe
from render.motion.folder import FRAMES, RECORD, frame_path
from render.motion.segments import Segment, cross_faded, find_parts, joined_frames
from render.motion.synthetic import PanClip
from render.quality import load_picture

PHOTO = Path(__file__).parents[1] / "configs" / "photos" / "chelsea.jpg"


@given(
    frames=st.integers(1, 200),
    data=st.data(),
    settle=st.integers(0, 12),
)
def test_the_kept_frames_of_the_segments_are_the_video_in_order(frames, data, settle):
    count = data.draw(st.integers(1, frames))
    segments = [Segment.of(frames, count, k, settle) for k in range(count)]
    kept = [t for s in segments for t in range(*s.kept)]
    assert kept == list(range(frames))
    assert all(s.stop > s.start for s in segments)  # none empty
    assert all(s.first == max(0, s.start - settle) for s in segments)
    assert segments[0].first == 0 and segments[0].whole == (count == 1)


def test_a_segment_outside_the_video_is_refused():
    with pytest.raises(UserError, match=r"video.segment must be in \[0, video.segments\)"):
        Segment.of(10, 3, 3, 0)
    with pytest.raises(UserError, match=r"video.segments=12 is more than the video's 10 frames"):
        Segment.of(10, 12, 0, 0)


@pytest.mark.parametrize("frames", ["video.frames=4", "video.frames=0"], ids=["zoom", "picture"])
def test_only_a_dreamed_video_is_cut_into_segments(tmp_path, frames):
    done = tiledream(
        frames,
        "video.segments=2",
        "tiling.base_size=[64,64]",
        "tiling.tile_size=[64,64]",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={tmp_path}",
        check=False,
    )
    assert done.returncode != 0
    assert "video.segments=2 cuts a dreamed video (init=video)" in done.stderr


def record(run_dir: Path, segment: int, segments: int = 2, **changes: object) -> Path:
    """A segment's frames record as a render writes it (flat keys), with ``changes``."""
    config = {
        "video.frames": 6,
        "video.segments": segments,
        "video.segment": segment,
        "video.settle": 1,
        "seed": 0,
        "resume": False,
        "trainer.accelerator": "cpu",
        **changes,
    }
    (run_dir / FRAMES).mkdir(parents=True)
    (run_dir / FRAMES / RECORD).write_text(yaml.safe_dump(config))
    return run_dir


def test_the_join_finds_each_segment_once_and_made_with_one_config(tmp_path):
    record(tmp_path / "a", 1, **{"trainer.accelerator": "gpu", "resume": True})
    record(tmp_path / "b", 0)
    parts = find_parts([tmp_path])  # a folder holding the run folders, in segment order
    assert [(p.run_dir.name, p.segment.kept) for p in parts] == [("b", (0, 3)), ("a", (3, 6))]
    assert [p.run_dir.name for p in find_parts([tmp_path / "a", tmp_path / "b"])] == ["b", "a"]
    with pytest.raises(UserError, match=r"found \[0\] .* \(missing \[1\]\)"):
        find_parts([tmp_path / "b"])
    record(tmp_path / "c", 0, seed=1)
    with pytest.raises(UserError, match=r"more than one of \[0\]"):
        find_parts([tmp_path])
    with pytest.raises(UserError, match=r"is not a segment of the video of .*seed is 1 there, 0"):
        find_parts([tmp_path / "c", tmp_path / "a"])
    with pytest.raises(UserError, match="no video segments in"):
        find_parts([tmp_path / "a" / FRAMES])


SEGMENT_FRAMES = [(0, 0), (0, 1), (0, 2), (1, 2), (1, 3), (1, 4), (1, 5)]


@pytest.mark.slow
def test_segments_of_a_sweep_join_into_the_video_and_each_resumes(tmp_path):
    clip = PanClip(load_picture(PHOTO), (64, 80), 6, fps=6, shift=(2.0, 1.0))
    clip.write(tmp_path / "clip.mp4")
    sweep = tmp_path / "sweep"
    cut = ["video.segments=2", "video.segment=0,1", "video.settle=1"]
    tiledream("-m", *VIDEO, f"init.path={tmp_path / 'clip.mp4'}", *cut, f"hydra.sweep.dir={sweep}")
    # Segment 1 dreams frame 2 to settle and keeps frames 3 to 5; neither writes a video.
    assert sorted(p.name for p in (sweep / "1" / FRAMES).glob("*.png")) == [
        f"{t:05d}.png" for t in range(2, 6)
    ]
    assert not list(sweep.glob("*/render.mp4"))
    # A segment stopped after frame 3 resumes at frame 4 and makes the same frames.
    kept = {t: frame_path(sweep / "1", t).read_bytes() for t in range(2, 6)}
    for t in (4, 5):
        frame_path(sweep / "1", t).unlink()
    tiledream(
        *VIDEO,
        f"init.path={tmp_path / 'clip.mp4'}",
        "video.segments=2",
        "video.segment=1",
        "video.settle=1",
        "resume=true",
        f"hydra.run.dir={sweep / '1'}",
    )
    assert "continuing at frame 4" in (sweep / "1" / "render.log").read_text()
    assert {t: frame_path(sweep / "1", t).read_bytes() for t in range(2, 6)} == kept

    joined = tiledream("join", str(sweep))
    assert joined.stdout.strip() == str(sweep / "render.mp4")
    info = probe(sweep / "render.mp4")
    assert (info.frames, info.fps, info.size, info.has_audio) == (6, 6, (64, 80), True)
    assert "video.segments=2" in tiledream("info", str(sweep / "render.mp4")).stdout
    # The video's frames: 3 to 5 are segment 1's; frame 2 is segment 0's and segment 1's
    # settling frame, cross-faded half and half.
    pictures = [pil_to_tensor(p) / 255 for p in cross_faded(joined_frames(find_parts([sweep])))]
    made = {(k, t): load_picture(frame_path(sweep / str(k), t))[0] for k, t in SEGMENT_FRAMES}
    faded = (made[0, 2] + made[1, 2]) / 2
    expected = [made[0, 0], made[0, 1], faded, *(made[1, t] for t in (3, 4, 5))]
    for picture, wanted in zip(pictures, expected, strict=True):
        assert (picture - wanted).abs().max() <= 1 / 255  # rounded to 8 bits
    assert min((faded - made[k, 2]).abs().mean() for k in (0, 1)) > 0.02  # two dreams


@pytest.mark.slow
def test_joins_of_segments_do_not_jump_and_the_first_segment_is_the_whole_videos(tmp_path):
    """scripts/video_compare.py --segments, shrunk: a 64 px pan of 24 frames in 3 segments."""
    from scripts.video_compare import compare

    clip = PanClip(load_picture(PHOTO), (64, 64), 24, fps=8, shift=(2.0, 0.0))
    result = compare(
        clip,
        "blocks.3.2",
        tmp_path,
        overrides=["tiling.tile_size=[64,64]", "render.octaves=2"],
        independent=False,
        segments=(3, 4),
    )
    whole, cut = result.dreams
    assert result.fades == ((4, 8), (12, 16))
    # A plain cut from one segment's dream to the next jumps about three times as much as the
    # video changes from frame to frame; cross-faded, no pair of frames does.
    assert max(result.pair_instabilities(cut)) <= 1.3 * max(result.pair_instabilities(whole))
    for t in range(8):  # segment 0's pixels are the one-process video's (the recipes differ)
        segment, video = (load_picture(frame_path(tmp_path / d, t)) for d in ("segments/0", "flow"))
        assert torch.equal(segment, video)
