"""Smoke tests of scripts/bench_render.py: its helpers, and one tiny timed render (slow)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_render.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script, imported as a module (it is not part of a package)."""
    spec = importlib.util.spec_from_file_location("bench_render", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.register_configs()
    return module


def test_markdown_table(bench: ModuleType) -> None:
    table = bench.markdown_table(["a", "b"], [[1, 0.123456], ["x", float("nan")]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.1235 |", "| x | n/a |"]


def test_parse_time_v(bench: ModuleType) -> None:
    text = "\tMaximum resident set size (kbytes): 2048\n\tExit status: 0\n"
    assert bench.parse_time_v(text) == 2048 * 1024
    assert bench.parse_time_v("nothing here") is None


def test_parse_args(bench: ModuleType) -> None:
    args = bench.parse_args(["--quick", "--parts", "1,3", "--tiles-per-step", "2,4"])
    assert args.parts == [1, 3]
    assert args.tiles_per_step == [2, 4]
    assert args.scale_sizes == [512, 1024]
    assert bench.parse_args(["--big"]).scale_sizes[-1] == 8192


def test_peak_rss_of_sees_an_allocation(bench: ModuleType) -> None:
    command = [sys.executable, "-c", "b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096])"]
    peak, seconds, error = bench.peak_rss_of(command, timeout_s=60)
    assert error == ""
    assert peak is not None and peak >= 64 * 2**20
    assert seconds > 0


def test_peak_rss_of_reports_a_failure(bench: ModuleType) -> None:
    command = [sys.executable, "-c", "import sys; sys.exit('boom')"]
    _, _, error = bench.peak_rss_of(command, timeout_s=60)
    assert error.startswith("exit 1") and "boom" in error


@pytest.mark.slow
def test_tiny_timed_render(bench: ModuleType) -> None:
    tiles = ["tiling.tile_size=[64,64]", "render.tiles_per_step=2"]
    cfg = bench.compose_config(tiles)
    model = bench.build(cfg.model)
    parts = bench.Parts(model, cfg, torch.device("cpu"))
    fit = bench.run_fit(
        model,
        [*tiles, "tiling.base_size=[112,112]", "trainer.accelerator=cpu"],
        warmup=1,
        timed=2,
        blend_repeats=1,
        probe=bench.make_probe(parts, 2),
    )
    assert fit.num_tiles == 4 and fit.steps_per_pass == 2
    assert len(fit.steps) == len(fit.probes) == 2
    assert all(step > 0 for step in fit.steps) and fit.blend_s > 0
    assert set(fit.probes[0]) >= {"bare", "bare_cpu", "pipeline_cpu", *bench.PHASES}


def test_side_by_side_variants_compare_like_with_like(bench: ModuleType) -> None:
    variants = bench.side_by_side_variants(1024, 50)
    assert list(variants) == ["pyramid (default)", "single-scale tiled", "whole image (one tile)"]
    assert variants["pyramid (default)"] == ["render.updates_per_tile=50"]
    assert "render.octaves=1" in variants["single-scale tiled"]
    whole = variants["whole image (one tile)"]
    assert "tiling.tile_size=[1024,1024]" in whole and "render.octaves=1" in whole
    # 36 tiles of 224 cover the 1024 canvas 1.72 times: as many pixel updates as the tiled render.
    assert f"render.updates_per_tile={50 * 36 * 224 * 224 / 1024**2:.1f}" in whole


def test_side_by_side_options(bench: ModuleType) -> None:
    args = bench.parse_args(["--parts", "4", "--sbs-size", "448", "--sbs-updates", "5"])
    assert args.parts == [4] and args.sbs_size == 448 and args.sbs_updates == 5
    assert args.sbs_class == 1 and args.sbs_overrides == []
