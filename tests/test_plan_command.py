"""``tiledream plan``: a render's octaves, memory, disk and time, without rendering."""

import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, tiledream

from render import cli, estimate
from render.plan import Octave
from render.progress import images_per_step, steps_seconds

PLAN = str(ROOT / "scripts" / "plan.py")


def run_plan(*overrides: str) -> subprocess.CompletedProcess:
    """``python scripts/plan.py OVERRIDES...`` from the repository root."""
    return subprocess.run(
        [sys.executable, PLAN, *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def seconds(out: str) -> float:
    found = re.search(r"^time: about (\d+) s on this machine \(", out, re.MULTILINE)
    assert found, out
    return float(found[1])


@pytest.mark.slow
def test_the_default_render_is_planned_without_rendering(tmp_path):
    result = run_plan("trainer.accelerator=cpu", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("canvas 448x448: 2 octaves, tiles of 224x224, 3 tiles per step, 1 rank")
    assert "octave 1/2: canvas 224x224, 1 tiles, 50 steps, 50 updates per tile, 1 image" in out
    assert "octave 2/2: canvas 448x448, 9 tiles, 150 steps, 50 updates per tile, 2 images" in out
    assert "steps: 200 per rank, 500 tile updates" in out
    assert "9 tiles per rank" in out and "render.png" in out
    assert "render.tif" not in out, "a 448 canvas gets no TIFF (output.large_pixels)"
    assert seconds(out) > 0
    assert "render.tiles_per_step=null: 3 (the default on the CPU" in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is rendered or written"


@pytest.mark.slow
def test_a_16384_poster_is_planned_from_its_geometry_with_the_store_shared_by_ranks():
    result = tiledream(
        "plan", "tiling.base_size=[16384,16384]", "trainer.accelerator=cpu", "trainer.devices=2"
    )
    out = result.stdout
    assert out.startswith(
        "canvas 16384x16384: 8 octaves, tiles of 224x224, 3 tiles per step, 2 ranks"
    )
    # 224-pixel tiles at a stride of 168: (16384 - 224) / 168 + 1 rounds up to 98 per side.
    assert "octave 8/8: canvas 16384x16384, 9604 tiles, " in out
    assert "4802 tiles per rank" in out
    store = re.search(r"tile store (\d+\.\d) GiB", out)
    assert store and 8.0 < float(store[1]) < 8.3, "half of 9604 tiles of 1.7 MiB each"
    # Machine-independent: every one of a rank's steps shows the model at least one image.
    steps = int(re.search(r"steps: (\d+) per rank", out)[1])
    one_image = float(re.search(r"a step of 1 image ([\d.]+) s", out)[1])
    assert seconds(out) >= steps * one_image


def test_a_bad_value_is_one_error_line_and_exit_2():
    result = tiledream("plan", "render.tiles_per_step=0", check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: render.tiles_per_step must be an integer >= 1 or 'auto', got 0"
    ]


def test_tiledream_plan_is_dispatched_before_hydra(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tiledream", "plan", "render.blend_every=-1"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    assert "error: render.blend_every must be an integer >= 0" in capsys.readouterr().err


def test_the_time_of_the_steps_is_the_running_estimates_formula():
    plan = [Octave(0, (224, 224), 1, 50, 50.0), Octave(1, (448, 448), 9, 150, 50.0, views=2)]
    assert [images_per_step(o, 3) for o in plan] == [1, 6]
    assert images_per_step(Octave(0, (1, 1), 10, 1, 1.0), 4) == 10 / 3, "batches of 4, 4, 2"
    assert steps_seconds(plan, 3, lambda images: 0.5 + images) == 50 * 1.5 + 150 * 6.5


def test_blends_and_disk_follow_the_plan():
    octave = Octave(1, (448, 448), 9, 150, 50.0, views=2)
    assert estimate.blends(octave, every=3, tiles_per_step=3, world=1) == 16  # 3 steps a pass
    assert estimate.blends(octave, every=0, tiles_per_step=3, world=1) == 0
    from test_configs import compose_render

    disk = estimate.disk_bytes(compose_render(), [octave], tiles_per_step=3, world=1)
    assert disk["render.png"] == round(448 * 448 * estimate.PNG_BYTES_PER_PIXEL)
    assert disk["progress.gif"] == round(17 * 448 * 448 * estimate.GIF_BYTES_PER_PIXEL)
    assert "render.tif" not in disk, "only the files output.* chooses are counted"
    alpha = estimate.disk_bytes(compose_render("output.alpha=true"), [octave], 3, world=1)
    assert alpha["render_alpha.png"] == round(448 * 448 * estimate.ALPHA_BYTES_PER_PIXEL)
    assert alpha["render.png"] == disk["render.png"] + alpha["render_alpha.png"]
    poster = Octave(1, (16384, 16384), 9604, 1, 1.0)
    large = estimate.disk_bytes(compose_render(), [poster], tiles_per_step=3, world=1)
    assert large["render.tif"] == round(16384**2 * estimate.TIFF_BYTES_PER_PIXEL)
    assert large["render.dzi + render_files/"] == round(
        16384**2 * estimate.DEEPZOOM_BYTES_PER_PIXEL
    )
    assert "render.png" not in large, "above output.png_max_pixels"


def test_memory_per_rank_follows_where_the_store_lives():
    machine = estimate.Machine(1.0, 0.0, 0.1, 10, 0.01, 1e-7, process_bytes=1000)
    plan = [Octave(0, (448, 448), 9, 150, 50.0)]
    parts = dict(store_bytes=100, canvas_bytes=20, step_bytes=5, model_bytes=7)
    common = dict(plan=plan, tiles_per_step=3, world=1, tiles_per_rank=9, process_bytes=1000)
    rest = dict(disk={}, seconds={"steps": 1.0}, machine=machine, images=(1, 3))
    cpu = estimate.Estimate(**common, device="cpu", offload=False, **parts, **rest)
    assert (cpu.device_bytes, cpu.host_bytes) == (0, 1000 + 100 + 20 + 5)
    gpu = estimate.Estimate(**common, device="cuda", offload=False, **parts, **rest)
    assert (gpu.device_bytes, gpu.host_bytes) == (100 + 20 + 7 + 5, 1000 + 20)
    offload = estimate.Estimate(**common, device="cuda", offload=True, **parts, **rest)
    assert (offload.device_bytes, offload.host_bytes) == (7 + 5, 1000 + 20 + 100)
    lines = estimate.describe(gpu, [224, 224])
    assert "device memory per rank: 132 B (tile store 100 B" in "\n".join(lines)


def test_the_outputs_are_timed_in_the_formats_the_canvas_gets(monkeypatch):
    # render.png for the default canvas; TIFF and deep zoom, no PNG, for a 16384 poster.
    from test_configs import compose_render

    written = []

    def write(tiling, fetch, folder, border, chosen, *, recipe):
        assert tiling._base_size == [estimate.OUTPUT_PROBE_SIDE] * 2
        # With output.alpha, the tiles carry a stand-in map as a fourth channel.
        assert fetch(torch.tensor([0, 5])).shape == (2, 3 + chosen.alpha, 224, 224)
        written.append((chosen.png, chosen.tiff, chosen.deepzoom, chosen.alpha))

    class Tiles:
        def decode_all(self, channels=3):
            return torch.rand(4, channels, 224, 224)

    monkeypatch.setattr(estimate, "write_pictures", write)
    for side in (448, 16384):
        estimate.time_outputs(compose_render(), Tiles(), (side, side))
    estimate.time_outputs(compose_render("output.alpha=true"), Tiles(), (448, 448))
    assert written == [
        (True, False, False, False),
        (False, True, True, False),
        (True, False, False, True),
    ]
