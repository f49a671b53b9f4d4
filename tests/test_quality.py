"""The measures a render is judged by: windows per level, finest-octave detail, seams."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from conftest import load_script

from render.models import efficientnet_lite0
from render.quality import (
    arrangement_kept,
    classify,
    composition_kept,
    fine_detail,
    recognition_by_level,
    seam_ratio,
    shuffle_blocks,
    step_ratio_where,
    tile_edges,
    window_levels,
    windows,
)
from tiling import TilingModule


def test_levels_go_down_to_about_one_tile():
    assert window_levels((1024, 1024), (224, 224)) == [1, 2, 4]
    assert window_levels((448, 448), (224, 224)) == [1, 2]
    assert window_levels((672, 672), (224, 224)) == [1, 2, 4]
    assert window_levels((2048, 2048), (224, 224)) == [1, 2, 4, 8]
    assert window_levels((224, 224), (224, 224)) == [1]


def test_windows_are_a_grid_row_by_row():
    canvas = torch.arange(16.0).reshape(1, 1, 4, 4)
    quarters = windows(canvas, 2)
    assert quarters.shape == (4, 1, 2, 2)
    assert quarters[1, 0].tolist() == [[2, 3], [6, 7]]
    assert torch.equal(windows(canvas, 1), canvas)


def test_fine_detail_is_what_a_2x_resample_removes():
    torch.manual_seed(0)
    noise = torch.rand(1, 3, 128, 128)
    smooth = TF.resize(TF.resize(noise, [32, 32], antialias=True), [128, 128], antialias=True)
    upsampled = TF.resize(TF.resize(noise, [64, 64], antialias=True), [128, 128], antialias=True)
    assert fine_detail(torch.full((1, 3, 64, 64), 0.5)) == pytest.approx(0, abs=1e-6)
    assert fine_detail(noise) > 5 * fine_detail(smooth)
    # An upsampled picture carries far less in its finest octave than the picture itself.
    assert fine_detail(upsampled) < 0.5 * fine_detail(noise)


def test_seam_ratio_sees_steps_at_tile_edges_only():
    tiling = TilingModule([64, 64], [0.25, 0.25], [160, 160])
    rows, cols = tile_edges(tiling)
    assert rows == cols == [48, 64, 96, 112]
    torch.manual_seed(0)
    smooth = TF.gaussian_blur(torch.rand(1, 3, 160, 160), [9, 9])
    assert seam_ratio(smooth, tiling) == pytest.approx(1, abs=0.2)
    seamed = smooth.clone()
    for r in rows:
        seamed[..., r:, :] += 0.05
    for c in cols:
        seamed[..., :, c:] += 0.05
    assert seam_ratio(seamed, tiling) > 2


def test_recognition_shares_follow_the_classifier():
    model = efficientnet_lite0()
    torch.manual_seed(0)
    canvas = torch.rand(1, 3, 448, 448)
    top = classify(model, windows(canvas, 2)).argmax(dim=1)
    shares = recognition_by_level(model, canvas, int(top[0]), (224, 224))
    assert set(shares) == {1, 2}
    assert shares[2] == pytest.approx(float((top == top[0]).float().mean()))
    whole = int(classify(model, canvas).argmax())
    assert recognition_by_level(model, canvas, whole, (224, 224))[1] == 1.0


def test_windows_of_a_grid_of_rows_and_columns():
    canvas = torch.rand(1, 3, 8, 12)
    thirds = windows(canvas, 1, 3)
    assert thirds.shape == (3, 3, 8, 4)
    torch.testing.assert_close(thirds[2], canvas[0, :, :, 8:])


def test_step_ratio_where_finds_a_cut_and_not_a_ramp():
    ramp = torch.linspace(0, 1, 32).expand(1, 3, 16, 32).contiguous()
    cut = (torch.arange(32) >= 16).float().expand(1, 3, 16, 32).contiguous()
    border = torch.zeros(16, 32, dtype=torch.bool)
    border[:, 14:17] = True
    assert step_ratio_where(ramp, border) == pytest.approx(1.0, rel=0.05)
    assert step_ratio_where(cut, border) > 5


def test_a_local_seam_ratio_tells_a_seam_from_busy_content_at_an_edge():
    tiling = TilingModule(tile_size=[16, 16], tile_overlap=[0.25, 0.25], base_size=[16, 28])
    assert tile_edges(tiling) == ([], [12, 16])
    noise = torch.rand(1, 3, 16, 28, generator=torch.Generator().manual_seed(0))
    busy = noise * (1 + 4 * ((torch.arange(28) - 14).abs() < 7))  # busier around the edges
    assert seam_ratio(busy, tiling) > 1.5
    assert seam_ratio(busy, tiling, reach=3) == pytest.approx(1.0, abs=0.35)
    cut = noise.clone()
    cut[..., 12:] += 2.0  # a step at column 12, a tile edge
    assert seam_ratio(cut, tiling, reach=3) > 2


def test_shuffled_blocks_all_move_and_keep_their_pixels():
    canvas = torch.arange(64.0).reshape(1, 1, 8, 8)
    shuffled = shuffle_blocks(canvas, 4, torch.Generator().manual_seed(0))
    before, after = windows(canvas, 4), windows(shuffled, 4)
    assert shuffled.shape == canvas.shape
    assert not any(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert sorted(map(tuple, after.flatten(1).tolist())) == sorted(
        map(tuple, before.flatten(1).tolist())
    )


def face(size: int) -> torch.Tensor:
    """A yellow face (two eyes, a mouth) filling a ``size`` x ``size`` green square."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    head = (x**2 + y**2 < 0.5).float()
    eyes = ((x - 0.3) ** 2 + (y + 0.2) ** 2 < 0.01) | ((x + 0.3) ** 2 + (y + 0.2) ** 2 < 0.01)
    mouth = (x.abs() < 0.35) & ((y - 0.35).abs() < 0.04)
    image = torch.tensor([0.5, 0.7, 0.4])[:, None, None] * (1 - head)
    image = image + torch.tensor([0.95, 0.8, 0.3])[:, None, None] * head
    return (image * (~(eyes | mouth)).float())[None]


def test_shuffling_takes_the_class_from_a_composed_picture_and_not_from_a_wallpaper():
    model = efficientnet_lite0()
    composed = face(448)
    aligned = face(112).repeat(1, 1, 4, 4)  # 2x2 copies in each quarter
    offset = face(100).repeat(1, 1, 5, 5)[..., :448, :448]  # copies cut by the quarters
    kept = {}
    for name, canvas in (("composed", composed), ("aligned", aligned), ("offset", offset)):
        top = int(classify(model, canvas).argmax())
        kept[name] = arrangement_kept(model, canvas, top, (224, 224))
        assert set(kept[name]) == {2}
    assert kept["aligned"][2] == pytest.approx(1.0, abs=1e-4)  # the same picture, shuffled
    assert kept["offset"][2] == pytest.approx(1.0, abs=0.1)
    assert kept["composed"][2] < 0.75


def test_composition_kept_finds_the_first_octave_in_a_refined_picture_not_in_a_wallpaper():
    first = face(224)
    noise = 0.2 * torch.rand(1, 3, 896, 896, generator=torch.Generator().manual_seed(0))
    refined = TF.resize(first, [896, 896], antialias=True) + noise - 0.1  # detail added
    wallpaper = first.repeat(1, 1, 4, 4)  # the same face, 16 times smaller each
    assert composition_kept(first, first) == pytest.approx(1.0, abs=1e-5)
    assert composition_kept(first, refined) > 0.9
    assert abs(composition_kept(first, wallpaper)) < 0.3


@pytest.mark.slow
def test_judge_prints_every_measure_of_a_render(tmp_path: Path, monkeypatch, capsys):
    wallpaper, first = tmp_path / "wallpaper.png", tmp_path / "first.png"
    TF.to_pil_image(face(112).repeat(1, 1, 4, 4)[0]).save(wallpaper)
    TF.to_pil_image(face(224)[0]).save(first)
    script = load_script("judge")
    argv = ["judge.py", str(wallpaper), "--class-index", "1", "--reference", str(first)]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    out = capsys.readouterr().out
    assert "(448x448, class 1 goldfish" in out
    assert "recognised: whole of 448: 0%, 2x2 of 224: 0%" in out
    assert "class kept with the blocks shuffled: 2x2: 1.00 (the whole image is not" in out
    assert "finest-octave detail: " in out and "seam ratio at the tile grid: " in out
    kept = float(out.split("first octave's composition kept (correlation): ")[1].split()[0])
    assert abs(kept) < 0.3  # a wallpaper of the first octave is not its composition
