"""Videos (render/motion/): the camera move, the objective's schedule, the MP4, and zooms and
morphs end to end through the real command line, stopped and resumed."""

import signal
import time
from pathlib import Path

import av
import pytest
import torch
from conftest import TINY, coordinate_canvas, made_once, start_render, tiledream
from PIL import Image

from render.config import compose_config
from render.errors import UserError
from render.models import efficientnet_lite0
from render.motion.encode import write_mp4
from render.motion.frames import frame_configs, frame_plans
from render.motion.schedule import Schedule
from render.motion.zoom import move
from render.objectives import channel, class_logit
from render.quality import classify, load_picture

# Three frames of the TINY render (112x112), each zoomed 1.1 times from the one before.
ZOOM = [*TINY, "video.frames=3", "video.zoom=1.1"]


def decoded(path: Path) -> list[Image.Image]:
    """The frames of a video file, as pictures."""
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def frame_bytes(run_dir: Path) -> dict[str, bytes]:
    """Every frame PNG of a video's run folder, by name."""
    return {p.name: p.read_bytes() for p in sorted((run_dir / "frames").glob("*.png"))}


@pytest.fixture(scope="module")
def zoomed(request):
    """The ZOOM video, run to its end (made once; tests read it)."""
    return made_once(request, "zoom", lambda run_dir: tiledream(*ZOOM, f"hydra.run.dir={run_dir}"))


# -- the camera move ---------------------------------------------------------------------------


def test_a_zoom_magnifies_about_its_centre():
    canvas = coordinate_canvas(32, 48)
    moved = move(canvas, zoom=2.0, center=(0.25, 0.5))
    # Each output pixel shows the point half as far from the centre (x = 0.5, y = 0.25), to a
    # tenth of a pixel (bicubic weights follow a straight ramp only nearly).
    expected = canvas.clone()
    expected[:, 0] = 0.5 + (canvas[:, 0] - 0.5) / 2
    expected[:, 1] = 0.25 + (canvas[:, 1] - 0.25) / 2
    assert torch.allclose(moved[:, :2], expected[:, :2], atol=0.1 / 48)


def test_a_rotation_turns_anticlockwise_and_a_drift_moves_the_picture():
    frame = torch.zeros(1, 3, 33, 33)
    frame[..., 16, 28] = 1  # right of the centre
    turned = move(frame, rotate=90.0)
    assert divmod(int(turned[0, 0].argmax()), 33) == (4, 16)  # above it
    shifted = move(frame, drift=(3.0, -5.0))
    assert divmod(int(shifted[0, 0].argmax()), 33) == (19, 23)


def test_what_comes_into_view_is_the_frame_mirrored_not_a_border():
    out = move(coordinate_canvas(16, 16), zoom=0.5)
    # Zoomed out about the centre, the corner pixel looks 7 pixels beyond the top left corner:
    # the frame mirrored there shows the point 7 pixels inside it.
    assert out[0, :2, 0, 0].tolist() == pytest.approx([7 / 16, 7 / 16], abs=1e-6)


# -- the objective's schedule ------------------------------------------------------------------


def test_a_morph_starts_and_ends_on_its_objectives_and_crosses_over_smoothly():
    schedule = Schedule([class_logit(1), class_logit(309)], frames=5)
    assert schedule.at(0) == class_logit(1)
    assert schedule.at(4) == class_logit(309)
    assert schedule.at(2) == 0.5 * class_logit(1) + 0.5 * class_logit(309)
    shares = [schedule.weights(t)[1] for t in range(5)]
    assert shares == sorted(shares) and shares[1] < 0.25  # smoothstep: slow at the ends
    three = Schedule([channel("a", 0), channel("a", 1), channel("a", 2)], frames=5)
    assert [three.weights(t) for t in (0, 2, 4)] == [(0, 0.0), (1, 0.0), (1, 1.0)]


def test_a_schedule_takes_one_list(tmp_path):
    result = tiledream(
        *TINY, "video.frames=2", "video.classes=[1]", "video.channels=[2]", check=False
    )
    assert result.returncode == 2
    assert "error: video: give at most one of video.channels (with objective.layer), " in (
        result.stderr
    )


# -- the video file ----------------------------------------------------------------------------


def test_the_mp4_is_h264_yuv420p_at_the_frame_rate_with_every_frame(tmp_path):
    paths = []
    for index, colour in enumerate(["red", "green", "blue"]):
        paths.append(tmp_path / f"{index}.png")
        Image.new("RGB", (35, 20), colour).save(paths[-1])
    assert write_mp4(paths, tmp_path / "v.mp4", fps=8, crf=0, comment="recipe") == 3
    with av.open(str(tmp_path / "v.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert stream.average_rate == 8 and container.metadata["comment"] == "recipe"
    frames = decoded(tmp_path / "v.mp4")
    assert [f.size for f in frames] == [(34, 20)] * 3  # yuv420p: even sizes
    assert [max(range(3), key=lambda c: f.getpixel((10, 10))[c]) for f in frames] == [0, 1, 2]
    with pytest.raises(UserError, match=r"video.crf must be an integer in \[0, 51\], got 52"):
        write_mp4(paths, tmp_path / "w.mp4", fps=8, crf=52)


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_zoom_writes_its_frames_and_an_mp4_that_carries_the_recipe(zoomed):
    assert list(frame_bytes(zoomed)) == ["00000.png", "00001.png", "00002.png"]
    frames = decoded(zoomed / "render.mp4")
    assert len(frames) == 3 and frames[0].size == (112, 112)
    # Each frame is the one before zoomed, then dreamed: close to the zoom, not equal to it.
    first, second = (load_picture(zoomed / "frames" / f"0000{i}.png") for i in (0, 1))
    start = move(first, zoom=1.1)
    dreamed = (second - start).abs().mean()
    assert 0.002 < dreamed < (second - first).abs().mean()
    info = tiledream("info", str(zoomed / "render.mp4"))
    assert "video.zoom=1.1" in info.stdout, info.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_stopped_or_killed_zoom_resumes_at_its_first_missing_frame_with_the_same_frames(
    zoomed, tmp_path, sig
):
    run_dir = tmp_path / "run"
    process = start_render(*ZOOM, f"hydra.run.dir={run_dir}")
    deadline = time.monotonic() + 300
    while not (run_dir / "frames" / "00001.png").exists() and time.monotonic() < deadline:
        assert process.poll() is None, "the video ended before its second frame"
        time.sleep(0.01)
    process.send_signal(sig)
    assert process.wait(timeout=120) == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    kept = frame_bytes(run_dir)
    assert "00001.png" in kept and "00002.png" not in kept and not (run_dir / "render.mp4").exists()
    if sig == signal.SIGTERM:
        log = (run_dir / "render.log").read_text()
        assert "stopped by SIGTERM in frame 2 of 3: frames 0 to 1 are saved in" in log
    resumed = tiledream(*ZOOM, "resume=true", f"hydra.run.dir={run_dir}")
    assert "continuing at frame 2" in (run_dir / "render.log").read_text(), resumed.stderr
    assert frame_bytes(run_dir) == frame_bytes(zoomed)
    assert len(decoded(run_dir / "render.mp4")) == 3


@pytest.mark.slow
def test_a_fresh_video_or_another_canvas_over_earlier_frames_is_refused(zoomed, tmp_path):
    result = tiledream(*ZOOM, f"hydra.run.dir={zoomed}", check=False)
    assert result.returncode == 2
    assert "frames holds the frames of an earlier video; add resume=true" in result.stderr
    other = tiledream(*ZOOM, "seed=1", "resume=true", f"hydra.run.dir={zoomed}", check=False)
    assert other.returncode == 2
    assert "config.yaml is a checkpoint of another canvas: seed is 0 there, 1 here" in other.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "views"),
    [(["experiment=morph"], 2), (["experiment=zoom"], 1)],
    ids=["from noise", "from a photo"],
)
def test_later_frames_keep_the_context_views_of_frame_0s_pyramid(overrides, views):
    """A morph's later frames (one octave each) still see each tile in the whole frame, as
    frame 0's pyramid from noise did; a photo's frames dream on the photo's composition."""
    configs = frame_configs(
        compose_config([*overrides, "tiling.base_size=[448,448]", "render.tiles_per_step=3"])
    )
    first, later = frame_plans(configs, (448, 448), from_image=overrides == ["experiment=zoom"])
    assert len(first) > 1 and len(later) == 1
    assert first[-1].views == later[0].views == views


def test_a_morph_with_warm_starts_ends_on_each_class(tmp_path):
    # One 224 tile: frame 0 is the goldfish from noise, the last frame the bee.
    tiledream(
        "experiment=morph",
        "tiling.base_size=[224,224]",
        "video.frames=4",
        "trainer.max_steps=12",
        "render.tiles_per_step=1",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={tmp_path}",
    )
    frames = torch.cat([load_picture(p) for p in sorted((tmp_path / "frames").glob("*.png"))])
    top = classify(efficientnet_lite0(), frames).argmax(dim=1).tolist()
    assert (top[0], top[-1]) == (1, 309), top


@pytest.mark.slow
def test_video_measure_prints_each_frames_gain_and_seams_and_draws_a_sheet(
    zoomed, tmp_path, capsys
):
    from scripts.video_measure import main

    main([str(zoomed), "--sheet", str(tmp_path / "sheet.jpg"), "--every", "2", "--columns", "2"])
    printed = capsys.readouterr().out
    assert "3 frames of 112x112, layer blocks.2.0, video.zoom=1.1" in printed
    row = printed.split("|---|---|---|---|\n")[1].split("|")
    gains = [float(v) for v in row[2].split(" / ")]
    assert min(gains) > 1, "each frame raised the layer over its start"
    assert row[3].strip() == "n/a"  # from noise: no undreamed view
    with Image.open(tmp_path / "sheet.jpg") as sheet:
        assert sheet.width == 1024  # frames 0 and 2, side by side
