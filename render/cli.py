"""The command line: ``tiledream`` (a render, Hydra overrides and ``-m``), ``tiledream plan``
(``tiledream-plan``) and ``tiledream-layers``.

``scripts/render.py``, ``scripts/plan.py`` and ``scripts/layers.py`` call the same functions
from a checkout.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig

from render.config import build, check_values, compose_config, config_dir, register_configs
from render.errors import RenderStopped, UserError

__all__ = ["layers", "main", "plan"]

register_configs()


def main() -> None:
    """``tiledream plan [overrides]`` plans; anything else is a render (Hydra's command line)."""
    if sys.argv[1:2] == ["plan"]:
        sys.exit(plan(sys.argv[2:]))
    render_main()


@hydra.main(config_path=config_dir(), config_name="render", version_base="1.3")
def render_main(cfg: DictConfig) -> None:
    """Render the composed config into Hydra's run directory; a UserError exits 2, a render
    stopped by a signal ``128 + signal`` (143 for SIGTERM) with the command that resumes it.
    """
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        # Before torch and Lightning are imported: a bad value is reported in a second.
        check_values(cfg)
        from render.run import render

        render(cfg, run_dir)
    except UserError as error:
        logging.getLogger("render").error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except RenderStopped as error:
        from render.rundir import owns_run_dir

        error.resume = "resume with: " + resume_command(HydraConfig.get().overrides.task, run_dir)
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


def resume_command(overrides: Sequence[str], run_dir: Path) -> str:
    """The command line that continues a render of ``overrides`` in ``run_dir``, shell-quoted."""
    program = sys.argv[0]
    command = ["python", program] if program.endswith(".py") else [Path(program).name]
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != "resume"]
    return shlex.join([*command, *kept, "resume=true", f"hydra.run.dir={run_dir}"])


def layers(overrides: Sequence[str] | None = None) -> int:
    """Print the configured model's hookable layers as ``name<TAB>channels``; the exit status.

    ``overrides`` default to the command line's arguments.
    """
    overrides = parse_overrides(
        sys.argv[1:] if overrides is None else overrides,
        "tiledream-layers",
        "List the configured model's hookable layers as NAME<TAB>CHANNELS, to pick "
        "objective.layer. Also: python scripts/layers.py.",
    )
    from render.models import describe_layers

    try:
        found = describe_layers(build(compose_config(overrides).model))
    except (UserError, HydraException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, channels in found:
        print(f"{name}\t{channels}")
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
