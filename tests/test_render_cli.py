"""scripts/render.py end to end, through the real command line."""

import csv
import re

import pytest
from conftest import TINY, assert_a_picture, tiledream
from PIL import Image


def test_tiny_render_writes_every_output(tiny_run):
    tmp_path = tiny_run
    assert_a_picture(tmp_path / "render.png", (112, 112))
    with Image.open(tmp_path / "render.png") as png:
        assert png.mode == "RGB"
    with Image.open(tmp_path / "render_tiles.png") as tiles:
        assert tiles.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    with Image.open(tmp_path / "progress.gif") as gif:
        # A pyramid of two octaves (64, 112), each with its start and a blend every 2 updates of
        # every tile: 1 tile updated 4 times (2 blends), then 4 tiles updated twice (1 blend).
        assert gif.n_frames == 3 + 2
    for octave in ("octave1", "octave2"):
        rows = list(csv.DictReader((tmp_path / "metrics" / octave / "metrics.csv").open()))
        assert [int(r["step"]) for r in rows if r.get("objective")] == [0, 1, 2, 3]
    assert (tmp_path / ".hydra" / "config.yaml").is_file()
    # The log plans the octaves and estimates the time; the bar counts each octave's steps.
    log = (tmp_path / "render.log").read_text()
    assert "octave 1/2: canvas 64x64, 1 tiles of 64x64, 4 steps" in log
    assert "octave 2/2: canvas 112x112, 4 tiles of 64x64, 4 steps" in log
    assert "octave 2/2: " in log and "expected to end in about" in log
    bar = tiny_run.with_suffix(".out").read_text().replace("\r", "\n")  # Lightning's bars
    assert "octave 1/2: 100%" in bar and "4/4" in bar
    assert "Epoch" not in bar


def test_steps_follow_the_canvas_without_max_steps(tmp_path):
    overrides = [o for o in TINY if not o.startswith("trainer.max_steps")]
    tiledream(*overrides, "render.updates_per_tile=2", f"hydra.run.dir={tmp_path}")
    counts = []
    for octave in ("octave1", "octave2"):
        rows = list(csv.DictReader((tmp_path / "metrics" / octave / "metrics.csv").open()))
        counts.append(len([r for r in rows if r.get("objective")]))
    # One tile, then four at two per step: two updates per tile each.
    assert counts == [2, 4]


def test_same_seed_same_bytes_other_seed_other_picture(tmp_path, tiny_run):
    # The shared TINY render (the default seed, 0) again, and with seed 4.
    tiledream(*TINY, f"hydra.run.dir={tmp_path / 'same'}")
    tiledream(*TINY, "seed=4", f"hydra.run.dir={tmp_path / 'other'}")
    first = (tiny_run / "render.png").read_bytes()
    assert (tmp_path / "same" / "render.png").read_bytes() == first
    assert (tmp_path / "other" / "render.png").read_bytes() != first


def test_multirun_sweeps_one_render_per_job(tmp_path):
    tiledream("-m", *TINY, "objective.channel=0,1", f"hydra.sweep.dir={tmp_path}")
    pngs = sorted(tmp_path.glob("*/render.png"))
    assert len(pngs) == 2
    assert pngs[0].read_bytes() != pngs[1].read_bytes()


def test_design_card_example_geometry(tmp_path):
    tiledream(
        "tiling.tile_size=[256,448]",
        "tiling.base_size=[320,512]",
        "trainer.max_steps=1",
        "render.tiles_per_step=1",
        "render.offload=true",
        "objective.layer=blocks.1.0",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={tmp_path}",
    )
    with Image.open(tmp_path / "render.png") as png:
        assert png.size == (512, 320)


def test_deep_dream_on_a_photo_takes_its_size_and_runs_octaves(tmp_path):
    photo = tmp_path / "photo.png"
    gradient = Image.linear_gradient("L").resize((150, 130)).convert("RGB")
    gradient.save(photo)
    tiledream(
        "init=image",
        f"init.path={photo}",
        "objective=deepdream",
        "objective.layer=blocks.2.0",
        "tiling.tile_size=[64,64]",
        "render.octaves=2",
        "trainer.max_steps=2",
        "render.tiles_per_step=4",
        "param=pixel",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    with Image.open(tmp_path / "run" / "render.png") as png:
        assert png.size == (150, 130)
        out = png.convert("L")
    # Deep dream starts from the photo: the gradient still shows through.
    assert out.getpixel((75, 125)) > out.getpixel((75, 5)) + 60


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["tiling.tile_size=[300,300]"], "tile_size [300, 300] must fit in the base size"),
        (["tiling.tile_overlap=[1.5,0.25]"], "tile_overlap as a fraction must be in [0, 1)"),
        (["objective.layer=blocks.5.0.bn11"], "blocks.5.0.bn1"),
        (["objective.channel=5000"], "5000"),
        (["objective=class_logit", "objective.class_index=1000"], "1000"),
        (["init=image", "init.path=/no/such/photo.jpg"], "/no/such/photo.jpg"),
        (
            ["experiment=accentuate", "objective=accentuate", "objective.keep_layer=blocks.9"],
            "keep_photo(blocks.9): unknown layer 'blocks.9'",
        ),
    ],
)
def test_user_mistakes_end_with_one_clear_line(tmp_path, overrides, message):
    keys = {o.split("=")[0] for o in overrides}
    if "objective" in keys:  # another objective has other keys
        keys |= {"objective.layer", "objective.channel"}
    base = [o for o in TINY if o.split("=")[0] not in keys]
    result = tiledream(*base, *overrides, f"hydra.run.dir={tmp_path}", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0]


@pytest.mark.parametrize(
    "given, chosen",
    [
        (
            "render.tiles_per_step=auto",
            r"render\.tiles_per_step=auto: (\d+) tiles per step \(2 per CPU core",
        ),
        ("render.tiles_per_step=2", None),
        (None, r"render\.tiles_per_step=null: (3) \(the default on the CPU; auto on CUDA\)"),
    ],
    ids=["auto", "number", "default"],
)
def test_each_form_of_tiles_per_step_renders_from_the_command_line(
    tmp_path, tiny_run, given, chosen
):
    run_dir = tmp_path
    if given in TINY:  # the number is TINY's own: its shared render
        run_dir = tiny_run
    else:
        base = [o for o in TINY if not o.startswith("render.tiles_per_step")]
        tiledream(*base, *([given] if given else []), f"hydra.run.dir={run_dir}")
    log = (run_dir / "render.log").read_text()
    found = re.search(chosen, log) if chosen else None
    assert chosen is None or found, log
    number = int(found[1]) if found else int(given.split("=")[1])
    assert f"4 steps of up to {number} tiles" in log, "the plan steps the chosen batch"
    assert (run_dir / "render.png").is_file()
