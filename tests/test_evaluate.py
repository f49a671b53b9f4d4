"""scripts/evaluate.py: a run's render judged by its own network and by one that never rendered.

``tests/data/chelsea.jpg`` is scikit-image's ``chelsea.png`` (a cat, Stefan van der Walt, CC0)
shrunk to 260x173: both packaged networks classify it *Egyptian cat* (285).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY, a_recipe, load_script, made_once, tiledream
from PIL import Image

from render.evaluation import evaluate, judge_model
from render.models import efficientnet_lite0, efficientnet_lite2
from render.models.embedded import lite_network, load_positional
from render.quality import classify, load_picture, recognition_by_level
from render.recipe import Recipe, Weights

CHELSEA = ROOT / "tests" / "data" / "chelsea.jpg"
EGYPTIAN_CAT = 285
#: TINY as a class render (goldfish): a 112x112 canvas of 64-pixel tiles, levels whole and 2x2.
TINY_CLASS = [
    *(o for o in TINY if not o.startswith("objective.")),
    "objective=class_logit",
    "objective.class_index=1",
]


@pytest.fixture(scope="session")
def tiny_class_run(request: pytest.FixtureRequest) -> Path:
    """The run folder of the TINY class render, made once."""
    return made_once(request, "tiny_class", lambda d: tiledream(*TINY_CLASS, f"hydra.run.dir={d}"))


def fake_run(folder: Path, image: Image.Image, recipe: Recipe) -> Path:
    """A run folder holding ``image`` as its render.png, carrying ``recipe``."""
    folder.mkdir(parents=True)
    image.save(folder / "render.png", pnginfo=recipe.png_info())
    return folder


#: A class render of the cat on tiles that fit the photo.
CAT = [
    "objective=class_logit",
    f"objective.class_index={EGYPTIAN_CAT}",
    "tiling.tile_size=[128,128]",
]


def test_the_judge_is_lite2_trained_apart_from_lite0() -> None:
    judge = judge_model()
    assert judge.name == "efficientnet_lite2" and judge.input_size == 260
    photo = load_picture(CHELSEA)
    for model in (judge, efficientnet_lite0()):
        probs = classify(model, photo, model.input_size).softmax(dim=1)[0]
        assert int(probs.argmax()) == EGYPTIAN_CAT and float(probs[EGYPTIAN_CAT]) > 0.5
    # Another width and depth: Lite2's weights cannot be Lite0's, nor load into its network.
    assert sum(p.numel() for p in judge.parameters()) > 1.2 * sum(
        p.numel() for p in efficientnet_lite0().parameters()
    )
    with pytest.raises(RuntimeError, match="tensors but"):
        load_positional(lite_network(0), judge.network.state_dict(), source="lite2")


def test_a_class_render_prints_every_level_for_both_networks(
    tiny_class_run: Path, tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_script("evaluate").main([str(tiny_class_run), str(tiny_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tiny_class_run} (112x112, class 1 goldfish, Carassius auratus):"
    assert lines[1].split() == [
        "windows",
        "renderer",
        "efficientnet_lite0",
        "judge",
        "efficientnet_lite2",
    ]
    assert [line.split()[:3] for line in lines[2:4]] == [
        ["whole", "of", "112"],
        ["2x2", "of", "56"],
    ]
    assert all(len(line.split()) == 5 and line.endswith("%") for line in lines[2:4])
    assert lines[4].startswith("  finest-octave detail: ")
    assert lines[5].startswith("  seam ratio at the tile grid: ")
    # The channel render: its measures, and no windows.
    assert lines[6] == f"{tiny_run} (112x112, objective render.objectives.channel):"
    assert "transferability is for class renders" in lines[7]
    assert len(lines) == 10


def test_json_figures_are_each_networks_own(
    tiny_class_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_script("evaluate").main([str(tiny_class_run), "--json"]) == 0
    [found] = json.loads(capsys.readouterr().out)
    canvas = load_picture(tiny_class_run / "render.png")
    lite0 = recognition_by_level(efficientnet_lite0(), canvas, 1, (64, 64), 224)
    lite2 = recognition_by_level(efficientnet_lite2(), canvas, 1, (64, 64), 260)
    assert [level["renderer"] for level in found["levels"]] == list(lite0.values())
    assert [level["judge"] for level in found["levels"]] == list(lite2.values())
    assert [level["window"] for level in found["levels"]] == [[112, 112], [56, 56]]
    assert found["renderer"] == "efficientnet_lite0" and found["judge"] == "efficientnet_lite2"
    assert found["class_index"] == 1 and not found["judge_is_renderer"]


def test_a_photo_of_the_class_transfers_and_noise_does_not(tmp_path: Path) -> None:
    with Image.open(CHELSEA) as photo:
        cat = fake_run(tmp_path / "cat", photo.convert("RGB"), a_recipe(*CAT))
    noise = torch.rand(173, 260, 3, generator=torch.Generator().manual_seed(0))
    pixels = Image.fromarray((255 * noise).byte().numpy())
    static = fake_run(tmp_path / "noise", pixels, a_recipe(*CAT))
    judged = {run.name: evaluate(run) for run in (cat, static)}
    assert judged["cat"].judged == {1: 1.0} and judged["cat"].levels == {1: 1.0}
    assert judged["noise"].judged == {1: 0.0} and judged["noise"].levels == {1: 0.0}
    assert judged["cat"].labels == ("Egyptian cat",)


def test_a_render_by_the_judge_is_not_called_transferable(tmp_path: Path) -> None:
    recipe = dataclasses.replace(
        a_recipe(*CAT, "model._target_=render.models.efficientnet_lite2"),
        weights=Weights.of(judge_model()),
    )
    with Image.open(CHELSEA) as photo:
        run = fake_run(tmp_path / "run", photo.convert("RGB"), recipe)
    found = evaluate(run)
    assert found.judge_is_renderer and found.judged == {}
    assert found.renderer == "efficientnet_lite2" and found.levels == {1: 1.0}
    text = "\n".join(found.lines())
    assert "judge efficientnet_lite2" not in text
    assert "the judge, efficientnet_lite2, rendered this run" in text
    assert found.as_dict()["levels"][0]["judge"] is None


def test_a_folder_without_a_render_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    for folder, message in (("empty", "has no render.png"), ("nope", "is not a folder")):
        assert load_script("evaluate").main([str(tmp_path / folder)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"error: {tmp_path / folder} {message}: ")
        assert len(err.splitlines()) == 1


def test_a_layout_of_classes_is_judged_window_by_window(tmp_path: Path) -> None:
    # A 2x2 atlas asking for the cat on the left and a goldfish on the right, over a picture
    # of four cats: the left windows are right, the right ones are not.
    recipe = a_recipe(
        *CAT[2:],
        "objective=atlas",
        "objective.channels=null",
        f"objective.classes=[{EGYPTIAN_CAT},1,{EGYPTIAN_CAT},1]",
        "objective.grid=[2,2]",
    )
    with Image.open(CHELSEA) as photo:
        # Square, as a classifier sees any window: the windows of the 2x2 level are the cats.
        cat = photo.convert("RGB").resize((photo.width, photo.width))
    mosaic = Image.new("RGB", (2 * cat.width, 2 * cat.height))
    for x in (0, cat.width):
        for y in (0, cat.height):
            mosaic.paste(cat, (x, y))
    found = evaluate(fake_run(tmp_path / "run", mosaic, recipe))
    assert found.classes == (EGYPTIAN_CAT, 1) and found.labels[0] == "Egyptian cat"
    assert found.levels[2] == 0.5 and found.judged[2] == 0.5
    assert found.lines()[0].endswith(
        "classes by place: 285 Egyptian cat; 1 goldfish, Carassius auratus):"
    )
