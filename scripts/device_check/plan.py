"""What the check measures: the sizes and step counts of every section, by ``--cpu``/``--quick``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass
class Plan:
    """Sizes and step counts of every section; ``--cpu --quick`` shrinks all of them."""

    cpu: bool
    quick: bool
    overrides: list[str]  # Hydra overrides every in-process render gets
    step_tiles: list[int]  # section 3: tiles per step
    step_warmup: int
    step_timed: int
    compile_tiles: list[int]  # section 6: tiles per step
    canvases: list[int]  # section 4
    optional_canvases: list[int]  # section 4, only when the budget allows
    pass_tiles: int  # section 4: tiles per step
    pass_max_timed: int  # section 4: timed steps at most (else a pass is extrapolated)
    tiling_tests: list[str]  # section 2: pytest arguments of the tiling group
    poster_sizes: list[int]  # section 5: canvas sides tried, largest first
    poster: list[str]  # section 5: overrides after experiment=poster_16k
    poster_updates: float | None  # section 5: render.updates_per_tile (None: the preset's)


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan for a CUDA machine, scaled down for ``--quick`` and (much more) ``--cpu``."""
    tiling_tests = ["tests/test_tiling_api.py", "tests/test_tiling_geometry.py", "-x"]
    if args.cpu:
        # Tiles of 64 and 1-2 steps: the same code paths, seconds instead of minutes.
        tile = ["tiling.tile_size=[32,32]"] if args.quick else []
        quick_tests = ["tests/test_tiling_api.py", "-x", "-k", "dtypes or retargets or stacked"]
        return Plan(
            cpu=True,
            quick=args.quick,
            overrides=["trainer.accelerator=cpu", *tile],
            step_tiles=[2] if args.quick else [4, 8],
            step_warmup=0 if args.quick else 1,
            step_timed=1 if args.quick else 2,
            compile_tiles=[2] if args.quick else [4],
            canvases=[80] if args.quick else [448, 1024],
            optional_canvases=[] if args.quick else [2048],
            pass_tiles=2 if args.quick else 8,
            pass_max_timed=1 if args.quick else 20,
            tiling_tests=quick_tests if args.quick else tiling_tests,
            # The CPU keeps a number of tiles per step (auto is for accelerators).
            poster_sizes=[128] if args.quick else [1024, 512],
            poster=[f"render.tiles_per_step={2 if args.quick else 8}"],
            poster_updates=1 if args.quick else 5,
        )
    return Plan(
        cpu=False,
        quick=args.quick,
        overrides=[],
        step_tiles=[8, 64] if args.quick else [8, 32, 128, 256],
        step_warmup=2,
        step_timed=3,
        compile_tiles=[8] if args.quick else [8, 64],
        canvases=[1024, 2048, 4096] if args.quick else [1024, 2048, 4096, 8192],
        optional_canvases=[] if args.quick else [16384],
        pass_tiles=64,
        pass_max_timed=40 if args.quick else 80,
        tiling_tests=tiling_tests,
        poster_sizes=[16384, 8192, 4096, 2048],
        poster=[],
        poster_updates=None,
    )
