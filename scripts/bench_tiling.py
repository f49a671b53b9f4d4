"""Time TilingModule against a memory copy of the tile stack and the reference release.

    python scripts/bench_tiling.py [--size 4096] [--tile 256] [--overlap 0.25] [--repeats 5]

Every figure is the median of ``--repeats`` runs, measured in this one run; ratios are against
cloning the tile stack (the memory-bound floor). The reference ``blended-tiling`` release is
timed too when it is installed (``pip install blended-tiling``); it is not a dependency.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from tiling import TilingModule


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_module(tile: int, overlap: float, size: int) -> torch.nn.Module | None:
    """The reference release's TilingModule, or None when it is not installed."""
    try:
        from blended_tiling import TilingModule as Reference
    except ImportError:
        return None
    return Reference([tile, tile], [overlap, overlap], [size, size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    module = TilingModule(args.tile, args.overlap, args.size)
    image = torch.rand(1, 3, args.size, args.size, device=device)
    tiles = module.split_into_tiles(image)
    print(
        f"base {args.size}x{args.size} RGB float32, tiles {args.tile} px, overlap {args.overlap}: "
        f"{module.tiling_pattern()[0]}x{module.tiling_pattern()[1]} = {module.num_tiles()} tiles, "
        f"tile stack {tiles.numel() * 4 / 2**20:.0f} MiB, device {device}, "
        f"threads {torch.get_num_threads()}"
    )

    floor = median_seconds(tiles.clone, args.repeats, device)
    ops: dict[str, Callable[[], object]] = {
        "split_into_tiles": lambda: module.split_into_tiles(image),
        "rebuild_with_masks": lambda: module.rebuild_with_masks(tiles),
        "forward": lambda: module(tiles),
        "get_tile_masks": lambda: module.get_tile_masks(device=device),
    }
    reference = reference_module(args.tile, args.overlap, args.size)
    if reference is not None:
        reference = reference.to(device)
        ref_ops: dict[str, Callable[[], object]] = {
            "split_into_tiles": lambda: reference.split_into_tiles(image),
            "rebuild_with_masks": lambda: reference.rebuild_with_masks(tiles),
            "forward": lambda: reference(tiles),
            "get_tile_masks": lambda: reference.get_tile_masks(device=device),
        }

    print("\n| operation | tiledream (s) | / clone | reference (s) | reference / tiledream |")
    print("|---|---|---|---|---|")
    print(f"| clone of the tile stack | {floor:.4f} | 1.00 | | |")
    for name, fn in ops.items():
        ours = median_seconds(fn, args.repeats, device)
        row = f"| {name} | {ours:.4f} | {ours / floor:.2f} |"
        if reference is not None:
            theirs = median_seconds(ref_ops[name], max(1, args.repeats // 2), device)
            row += f" {theirs:.4f} | {theirs / ours:.1f}x |"
        else:
            row += " not installed | |"
        print(row)


if __name__ == "__main__":
    main()
