"""What a render will take, worked out before it runs (``tiledream plan``).

The octaves and steps are the render's own plan (render/run.py ``make_plan``); memory comes
from render/budget.py's estimates and a measured step; the time from a short probe on this
machine: forward and backward passes of the real model at the render's tile size and batches
(render/batching.py's probe), one real blend of a small canvas, the chosen output files
written for a 1024x1024 canvas, scaled by the plan as the running render's own estimate does
(render/progress.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
from omegaconf import DictConfig

from render import batching
from render.budget import canvas_bytes, tile_bytes, uses_cuda
from render.config import build, check_values
from render.models import FeatureModel
from render.objectives import Objective
from render.pictures import Pictures, write_pictures
from render.plan import Octave
from render.progress import images_per_step, steps_seconds
from render.recipe import Recipe, Weights, versions
from render.renderer import TileRenderer
from render.run import (
    canvas_size,
    context_sizes,
    decide_tiles_per_step,
    make_plan,
    make_renderer,
    make_tiling,
    state_dtype,
    world_size,
)

#: Bytes on disk per canvas pixel of each output (render/pictures.py), measured on real renders
#: (a feature visualisation is detailed everywhere, so it compresses little): lossless PNG
#: (render.png, the default render: 2.24; render_tiles.png is about the same again), the tiled
#: pyramidal BigTIFF (deflate, 256-pixel tiles, every level) and the deep-zoom pyramid (JPEG
#: tiles of quality 90, every level: 0.82 on the 2048x2048 bee poster), and the progress GIF
#: per frame pixel.
PNG_BYTES_PER_PIXEL = 2.24
TIFF_BYTES_PER_PIXEL = 3.47
DEEPZOOM_BYTES_PER_PIXEL = 0.82
GIF_BYTES_PER_PIXEL = 0.6
#: The transparency map (output.alpha) per canvas pixel, as render_alpha.png and again as the
#: alpha channel of render.png and render.tif: 0.74 (render_alpha.png of a 224x336 goldfish
#: render; its RGBA render.png was 0.80 larger than the RGB one).
ALPHA_BYTES_PER_PIXEL = 0.74
#: Seconds a render spends in each octave outside its steps and blends (Lightning's Trainer
#: set up and torn down, the canvas encoded into tiles), measured on the 2-core CPU.
OCTAVE_SETUP_S = 1.5
#: Steps timed at each batch size after one warm-up step.
PROBE_REPEATS = 2
#: The side of the canvas the probe writes in each chosen format: large enough that a file's
#: fixed costs (opening libvips, a deep zoom's folders) do not swamp its cost per pixel.
OUTPUT_PROBE_SIDE = 1024


@dataclass(frozen=True)
class Machine:
    """What this machine was measured to take: seconds and bytes."""

    startup_s: float  # process start to the model loaded
    step_fixed_s: float  # a step's time that does not grow with its images
    step_per_image_s: float
    step_bytes_per_image: int  # activations kept for the backward pass
    blend_per_tile_s: float  # a blend of the whole canvas, per tile
    write_per_pixel_s: float  # the chosen output files (render/pictures.py), per canvas pixel
    process_bytes: int  # resident memory with the model loaded

    def step_seconds(self, images: float) -> float:
        """Seconds of a step that shows the model ``images`` images."""
        return self.step_fixed_s + images * self.step_per_image_s


@dataclass(frozen=True)
class Estimate:
    """A render's plan and what it will take, per rank."""

    plan: list[Octave]
    tiles_per_step: int
    world: int
    device: str
    offload: bool
    tiles_per_rank: int
    store_bytes: int  # the largest octave's share of the tile store (with a blend's pixels)
    canvas_bytes: int
    step_bytes: int
    model_bytes: int
    process_bytes: int
    disk: dict[str, int]
    seconds: dict[str, float]
    machine: Machine
    images: tuple[int, int]  # the fewest and the most images per step, as measured

    @property
    def device_bytes(self) -> int:
        """Peak device memory per rank (0 on the CPU)."""
        if self.device == "cpu":
            return 0
        state = 0 if self.offload else self.store_bytes + self.canvas_bytes
        return state + self.model_bytes + self.step_bytes

    @property
    def host_bytes(self) -> int:
        """Peak host memory per rank."""
        if self.device == "cpu":
            return self.process_bytes + self.store_bytes + self.canvas_bytes + self.step_bytes
        # The canvas comes to the host for the outputs; an offloaded store lives there.
        return self.process_bytes + self.canvas_bytes + (self.store_bytes if self.offload else 0)


def timed(run: Callable[[], object], device: torch.device, repeats: int = 1) -> float:
    """The mean seconds of ``repeats`` runs of ``run`` (the device waited for): on a busy
    machine the render's steps take the mean, not the luckiest run.
    """
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def probe_sizes(images: Sequence[float]) -> tuple[int, int]:
    """The fewest and the most images per step of a plan, the batches the probe times."""
    return max(1, round(min(images))), max(1, round(max(images)))


def saved_bytes(run: Callable[[], object]) -> int:
    """Bytes of the distinct tensors ``run`` keeps for its backward pass (its activations)."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


def measure(
    cfg: DictConfig,
    model: FeatureModel,
    objective: Objective,
    device: torch.device,
    base: tuple[int, int],
    images: Sequence[float],
    startup_s: float,
) -> Machine:
    """Time the steps for the fewest and the most ``images`` per step, a blend and a PNG."""
    tile = (int(cfg.tiling.tile_size[0]), int(cfg.tiling.tile_size[1]))
    param = build(cfg.param, tile_size=tile)
    step = batching.probe(model, objective, param, build(cfg.transforms), device)
    few, most = probe_sizes(images)
    process = psutil.Process().memory_info().rss
    # Also the warm-up: the first pass allocates and starts the thread pools.
    activations = saved_bytes(functools.partial(step, most)) / most
    seconds = {n: timed(functools.partial(step, n), device, PROBE_REPEATS) for n in {few, most}}
    per_image = (seconds[most] - seconds[few]) / (most - few) if most > few else 0.0
    per_image = per_image if per_image > 0 else seconds[most] / most
    fixed = max(seconds[few] - few * per_image, 0.0)
    # A real blend (TileRenderer.blend: decode, blend, encode, context view) of 2x2 tiles.
    size = (min(2 * tile[0], base[0]), min(2 * tile[1], base[1]))
    tiling = make_tiling(cfg.tiling, size)
    context = context_sizes(cfg, tile, size, base) if cfg.render.context and size != tile else None
    module = make_renderer(
        cfg, model, objective, tiling, param, seed=0, init_canvas=None, context=context
    ).to(device)
    module.store.to(device)
    module.blend()
    blend_s = timed(module.blend, device)
    write_s = time_outputs(cfg, module, base)
    model.to("cpu")
    return Machine(
        startup_s=startup_s,
        step_fixed_s=fixed,
        step_per_image_s=per_image,
        step_bytes_per_image=int(activations),
        blend_per_tile_s=blend_s / tiling.num_tiles(),
        write_per_pixel_s=write_s / OUTPUT_PROBE_SIDE**2,
        process_bytes=process,
    )


def time_outputs(cfg: DictConfig, module: TileRenderer, base: tuple[int, int]) -> float:
    """Seconds to write the files ``output.*`` chooses for a ``base`` canvas, for a canvas of
    ``OUTPUT_PROBE_SIDE`` squared made of ``module``'s decoded tiles (a render's texture, which
    compresses as a render does), with the render's own writer.
    """
    side = OUTPUT_PROBE_SIDE
    chosen = dataclasses.replace(Pictures.choose(cfg.output, base), png_max_pixels=side * side)
    tiling = make_tiling(cfg.tiling, (side, side))
    pixels = module.decode_all(channels=4 if chosen.alpha else 3).cpu()
    if chosen.alpha:
        # A stand-in for the transparency map, as detailed as the picture.
        pixels[:, 3] = pixels[:, :3].mean(dim=1)
    recipe = Recipe(
        "tiledream plan", (), int(cfg.seed), versions(), Weights("probe", None, None), {}, {}
    )
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_pictures(
            tiling,
            lambda idx: pixels[idx % len(pixels)],
            Path(folder),
            int(cfg.render.border),
            chosen,
            recipe=recipe,
        )
        return time.perf_counter() - start


def blends(octave: Octave, every: int, tiles_per_step: int, world: int) -> int:
    """Blends in ``octave``: one every ``every`` passes over its tiles (render/callbacks.py)."""
    if every <= 0:
        return 0
    shard = math.ceil(octave.tiles / world)
    return octave.steps // (every * math.ceil(shard / min(tiles_per_step, shard)))


def disk_bytes(cfg: DictConfig, plan: Sequence[Octave], tiles_per_step: int, world: int) -> dict:
    """Bytes of each output file the render will write (``output.*``; ``PNG_BYTES_PER_PIXEL``
    and its kin)."""
    height, width = plan[-1].size
    pixels = height * width
    scale = min(1.0, cfg.render.gif_max_size / max(height, width))
    frames = sum(1 + blends(o, cfg.render.blend_every, tiles_per_step, world) for o in plan)
    chosen = Pictures.choose(cfg.output, (height, width))
    files = {"progress.gif": round(frames * pixels * scale**2 * GIF_BYTES_PER_PIXEL)}
    alpha = ALPHA_BYTES_PER_PIXEL if chosen.alpha else 0.0
    if chosen.png:
        files["render.png"] = round(pixels * (PNG_BYTES_PER_PIXEL + alpha))
        files["render_tiles.png"] = round(pixels * PNG_BYTES_PER_PIXEL)
        if chosen.alpha:
            files["render_alpha.png"] = round(pixels * alpha)
    if chosen.tiff:
        files["render.tif"] = round(pixels * (TIFF_BYTES_PER_PIXEL + alpha))
    if chosen.deepzoom:
        files["render.dzi + render_files/"] = round(pixels * DEEPZOOM_BYTES_PER_PIXEL)
    return files


def estimate(
    cfg: DictConfig,
    model: FeatureModel,
    objective: Objective,
    startup_s: float,
) -> Estimate:
    """The plan of the render ``cfg`` describes and what it will take on this machine.

    ``model`` and ``objective`` are the render's, built; ``startup_s`` the seconds it took to
    get them (from the process's start).
    """
    check_values(cfg)
    objective.validate(model.layer_channels())
    init = build(cfg.init)
    base = canvas_size(cfg, init)
    from_image = init.size() is not None
    world = world_size(cfg.trainer)
    tile = (int(cfg.tiling.tile_size[0]), int(cfg.tiling.tile_size[1]))
    tps = decide_tiles_per_step(cfg, model, objective, base, from_image)
    plan = make_plan(cfg, base, from_image)
    device = torch.device("cuda" if uses_cuda(cfg.trainer) else "cpu")
    images = [images_per_step(o, tps, world) for o in plan]
    machine = measure(cfg, model, objective, device, base, images, startup_s)
    param = build(cfg.param, tile_size=tile)
    tiles_per_rank = math.ceil(plan[-1].tiles / world)
    every = cfg.render.blend_every
    blend_s = sum(
        # The blends, and at each octave's start and end: a canvas for the progress GIF and
        # the context view, the tiles decoded for the next octave.
        (blends(o, every, tps, world) + 2) * math.ceil(o.tiles / world) * machine.blend_per_tile_s
        for o in plan
    )
    pixels = base[0] * base[1]
    seconds = {
        "startup": machine.startup_s,
        "steps": steps_seconds(plan, tps, machine.step_seconds, world),
        "blends": blend_s,
        "octave set-up": OCTAVE_SETUP_S * len(plan),
        "outputs": pixels * machine.write_per_pixel_s,
    }
    return Estimate(
        plan=plan,
        tiles_per_step=tps,
        world=world,
        device=device.type,
        offload=bool(cfg.render.offload),
        tiles_per_rank=tiles_per_rank,
        store_bytes=tiles_per_rank
        * tile_bytes(param, state_dtype(cfg.render.state_dtype), cfg.output.alpha),
        canvas_bytes=canvas_bytes((base[0], base[1])) * tiles_per_rank // plan[-1].tiles,
        step_bytes=round(max(images) * machine.step_bytes_per_image),
        model_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
        process_bytes=machine.process_bytes,
        disk=disk_bytes(cfg, plan, tps, world),
        seconds=seconds,
        machine=machine,
        images=probe_sizes(images),
    )


def _size(count: float) -> str:
    """Bytes in the largest unit that keeps a number >= 1 (``1.2 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def describe(found: Estimate, tile: Sequence[int]) -> list[str]:
    """The plan as lines for a user: octaves, totals, memory per rank, disk, time."""
    plan, tps = found.plan, found.tiles_per_step
    height, width = plan[-1].size
    lines = [
        f"canvas {height}x{width}: {len(plan)} octaves, tiles of {tile[0]}x{tile[1]}, "
        f"{tps} tiles per step, {found.world} rank{'s' if found.world > 1 else ''} on "
        f"{found.device}"
    ]
    for o in plan:
        lines.append(
            f"octave {o.index + 1}/{len(plan)}: canvas {o.size[0]}x{o.size[1]}, {o.tiles} tiles, "
            f"{o.steps} steps, {o.updates_per_tile:g} updates per tile, {o.views} "
            f"image{'s' if o.views > 1 else ''} per tile update"
        )
    updates = sum(o.steps * images_per_step(o, tps, found.world) / o.views for o in plan)
    lines.append(f"steps: {sum(o.steps for o in plan)} per rank, {updates:.0f} tile updates")
    device = (
        "none (the CPU steps in host memory)"
        if found.device == "cpu"
        else f"{_size(found.device_bytes)} (tile store {_size(found.store_bytes)}, canvas "
        f"{_size(found.canvas_bytes)}, model {_size(found.model_bytes)}, step "
        f"{_size(found.step_bytes)})"
    )
    lines.append(f"device memory per rank: {device}")
    lines.append(
        f"host memory per rank: {_size(found.host_bytes)} (process with the model "
        f"{_size(found.process_bytes)}"
        + (
            f", tile store {_size(found.store_bytes)}"
            if found.device == "cpu" or found.offload
            else ""
        )
        + f", canvas {_size(found.canvas_bytes)}"
        + (f", step {_size(found.step_bytes)}" if found.device == "cpu" else "")
        + f"); {found.tiles_per_rank} tiles per rank"
    )
    lines.append(
        "disk: " + ", ".join(f"{name} {_size(count)}" for name, count in found.disk.items())
    )
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in found.seconds.items())
    lines.append(f"time: about {sum(found.seconds.values()):.0f} s on this machine ({parts})")
    machine = found.machine
    steps = " and ".join(
        f"of {n} image{'s' if n > 1 else ''} {machine.step_seconds(n):.2f} s"
        for n in sorted(set(found.images))
    )
    lines.append(
        f"measured here: a step {steps}; a blend {1000 * machine.blend_per_tile_s:.0f} ms per "
        f"tile; the outputs {1e6 * machine.write_per_pixel_s:.2f} s per megapixel; startup "
        f"{machine.startup_s:.1f} s"
    )
    return lines
