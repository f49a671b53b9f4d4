"""The command line: ``tiledream`` (a render, Hydra overrides and ``-m``), ``tiledream plan``
(``tiledream-plan``), ``tiledream info`` and ``tiledream replay`` (``tiledream-info``,
``tiledream-replay``: a picture's recipe, render/recipe.py), ``tiledream join`` (a dreamed
video's segments into one MP4) and ``tiledream-layers``.

``scripts/render.py``, ``scripts/plan.py`` and ``scripts/layers.py`` call the same functions
from a checkout (``python scripts/render.py info render.png`` too).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import hydra
import yaml
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig

from render.config import (
    build,
    check_values,
    compose_config,
    config_dir,
    group_choices,
    register_configs,
)
from render.errors import RenderStopped, UserError
from render.recipe import Launch, Recipe, read_recipe, without_resume

__all__ = ["info", "join", "layers", "main", "plan", "replay"]

register_configs()


def main() -> None:
    """``tiledream plan|info|replay|join ...``; anything else is a render (Hydra's command
    line)."""
    commands = {"plan": plan, "info": info, "replay": replay, "join": join}
    if sys.argv[1:2] and sys.argv[1] in commands:
        sys.exit(commands[sys.argv[1]](sys.argv[2:]))
    program = command_program()
    run_hydra(config_dir(), "render", sys.argv[1:], program, program)


def command_program() -> list[str]:
    """How this process was started, as a command's first words: ``tiledream`` or
    ``python scripts/render.py``."""
    program = sys.argv[0]
    return ["python", program] if program.endswith(".py") else [Path(program).name]


def run_hydra(
    config_path: str,
    config_name: str,
    args: Sequence[str],
    program: Sequence[str],
    resume_program: Sequence[str],
    replaying: Recipe | None = None,
) -> None:
    """Hydra's command line over ``args`` with the primary config ``config_name`` in
    ``config_path``: each job renders its config (:func:`render_job`).

    ``program`` begins the command line the recipe records, ``resume_program`` the one that
    resumes a stopped render; ``replaying``: the recipe that ``tiledream replay`` renders again.
    """

    argv = sys.argv

    @hydra.main(config_path=config_path, config_name=config_name, version_base="1.3")
    def job(cfg: DictConfig) -> None:
        # Lightning's DDP launcher starts the other ranks with the command line as it was
        # (with Hydra's run folder added): ``tiledream replay FILE ...`` for a replay.
        sys.argv = argv
        render_job(cfg, program, resume_program, replaying)

    sys.argv = [argv[0], *args]  # what Hydra parses
    try:
        job()
    finally:
        sys.argv = argv


def render_job(
    cfg: DictConfig,
    program: Sequence[str],
    resume_program: Sequence[str],
    replaying: Recipe | None,
) -> None:
    """Render the composed config into Hydra's run directory; a UserError exits 2, a render
    stopped by a signal ``128 + signal`` (143 for SIGTERM) with the command that resumes it.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = tuple(hydra_cfg.overrides.task)
    launch = Launch(
        program=tuple(program),
        # A replay records the recipe's command line with the replay's overrides on it.
        overrides=overrides if replaying is None else replaying.overrides_with(overrides),
        choices=group_choices(hydra_cfg.runtime.choices),
        replaying=replaying,
    )
    try:
        # Before torch and Lightning are imported: a bad value is reported in a second.
        check_values(cfg)
        from render.run import render

        render(cfg, run_dir, launch=launch)
    except UserError as error:
        logging.getLogger("render").error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except RenderStopped as error:
        from render.rundir import owns_run_dir

        error.resume = "resume with: " + resume_command(overrides, run_dir, resume_program)
        if owns_run_dir():  # one line for the render, not one per process
            logging.getLogger("render").error("%s", error)
            print(error, file=sys.stderr)
        else:
            logging.getLogger("render").info("%s", error)
        # The handler that was there before the render (submitit's requeue) has its turn too.
        handler = signal.getsignal(error.signum)
        if callable(handler):
            handler(error.signum, None)
        sys.exit(error.exit_status)


def resume_command(
    overrides: Sequence[str], run_dir: Path, program: Sequence[str] | None = None
) -> str:
    """The command line that continues a render of ``overrides`` in ``run_dir``, shell-quoted;
    ``program`` (default :func:`command_program`) begins it."""
    command = command_program() if program is None else list(program)
    kept = without_resume(overrides)
    return shlex.join([*command, *kept, "resume=true", f"hydra.run.dir={run_dir}"])


def info(args: Sequence[str] | None = None) -> int:
    """Print the recipe a picture carries: its command, seed, versions, weights and config;
    the exit status. ``args`` default to the command line's arguments."""
    parser = argparse.ArgumentParser(
        prog="tiledream info",
        description="Print how a picture was made: the recipe every tiledream render writes "
        "into its pictures (command line, seed, versions, model weights, resolved config).",
    )
    parser.add_argument(
        "file",
        help="render.png, render_tiles.png, render.tif, render.dzi or "
        "progress.gif, in its run folder or copied anywhere",
    )
    found = parser.parse_args(sys.argv[1:] if args is None else args)
    try:
        recipe = read_recipe(found.file)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(recipe.describe())
    return 0


def replay(args: Sequence[str] | None = None) -> int:
    """Render a picture again from its recipe, with ``args``' overrides on top; the exit
    status. ``args`` (``FILE [overrides]``) default to the command line's arguments."""
    parser = argparse.ArgumentParser(
        prog="tiledream replay",
        description="Render a picture again from the recipe it carries (its resolved config), "
        "into a new run folder. On the same machine and versions the picture is the same, "
        "byte for byte; a warning names any version or weight file that differs.",
        epilog="example: tiledream replay render.png trainer.max_steps=400 "
        "hydra.run.dir=outputs/again",
    )
    parser.add_argument(
        "file",
        help="a picture a tiledream render wrote (render.png, "
        "render.tif, render.dzi, progress.gif)",
    )
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="Hydra overrides applied over the recipe's config (key=value, hydra.run.dir=...)",
    )
    found = parser.parse_args(sys.argv[1:] if args is None else args)
    try:
        recipe = read_recipe(found.file)
        if recipe.in_python:
            raise UserError(
                f"{found.file} was rendered with a {' and '.join(recipe.in_python)} given in "
                f"Python (render_image), which its config does not describe: render it again "
                f"from Python"
            )
        # Hydra's own flags (-m, --cfg job) stay on the command line, not in the config.
        overrides = get_args_parser().parse_args(found.overrides).overrides
        config = recipe.replay_config(overrides, config_dir())
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tiledream_replay_") as folder:
        (Path(folder) / "replay.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        resume = [*command_program(), "replay", found.file]
        run_hydra(folder, "replay", found.overrides, recipe.program(), resume, recipe)
    return 0


def join(args: Sequence[str] | None = None) -> int:
    """Join the segments of a dreamed video (``video.segments``) into one MP4; the exit status.
    ``args`` default to the command line's arguments."""
    parser = argparse.ArgumentParser(
        prog="tiledream join",
        description="Encode the frames of every segment of a dreamed video (renders of "
        "init=video with video.segments=N, one per video.segment) into one MP4 with the input "
        "video's audio track. The segments must be made with one config.",
        epilog="example: tiledream -m init=video init.path=clip.mp4 video.segments=2 "
        "video.segment=0,1 hydra.sweep.dir=outputs/clip, then tiledream join outputs/clip",
    )
    parser.add_argument(
        "folders",
        nargs="+",
        type=Path,
        help="the segments' run folders, or a folder holding them (a sweep's folder)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the MP4 to write (default: render.mp4 in the folder holding the segments)",
    )
    found = parser.parse_args(sys.argv[1:] if args is None else args)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from render.motion.segments import join as join_segments

    try:
        written = join_segments(list(found.folders), found.out)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(written)
    return 0


def layers(overrides: Sequence[str] | None = None) -> int:
    """Print the configured model's hookable layers as ``name<TAB>channels<TAB>HxW`` (the map's
    size for an input of the model's size; ``-`` for logits); the exit status.

    ``overrides`` default to the command line's arguments.
    """
    overrides = parse_overrides(
        sys.argv[1:] if overrides is None else overrides,
        "tiledream-layers",
        "List the configured model's hookable layers as NAME<TAB>CHANNELS<TAB>HxW (the map's "
        "size at the model's input size; transformers' token grids included), to pick "
        "objective.layer. Also: python scripts/layers.py.",
    )
    from render.models import describe_layers

    try:
        found = describe_layers(build(compose_config(overrides).model))
    except (UserError, HydraException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, channels, size in found:
        print(f"{name}\t{channels}\t{'-' if size is None else f'{size[0]}x{size[1]}'}")
    return 0


def plan(overrides: Sequence[str] | None = None) -> int:
    """Print what the render of ``overrides`` would take, without rendering: its octaves,
    tiles and steps, memory per rank, disk and time on this machine; the exit status.

    ``overrides`` default to the command line's arguments.
    """
    overrides = parse_overrides(
        sys.argv[1:] if overrides is None else overrides,
        "tiledream plan",
        "What the render of the same overrides would take, without rendering: its octaves, "
        "tiles and steps, memory per rank, disk and time on this machine. Also: tiledream-plan, "
        "python scripts/plan.py.",
    )
    try:
        cfg = compose_config(overrides)
        check_values(cfg)
        import psutil

        from render.estimate import describe, estimate

        # The decision on render.tiles_per_step is logged, as in a render.
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        model, objective = build(cfg.model), build(cfg.objective)
        startup = time.time() - psutil.Process().create_time()
        found = estimate(cfg, model, objective, startup)
    except (UserError, HydraException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(describe(found, list(cfg.tiling.tile_size))))
    return 0


def parse_overrides(argv: Sequence[str], command: str, summary: str) -> list[str]:
    """The Hydra overrides in ``argv``; ``-h``/``--help`` prints ``command``'s usage and exits."""
    parser = argparse.ArgumentParser(
        prog=command,
        description=summary,
        epilog="tiledream --help lists the config groups and every key with its value.",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides, as for a render"
    )
    return list(parser.parse_args(argv).overrides)
