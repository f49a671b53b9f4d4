"""Render a feature visualisation: ``python scripts/render.py [key=value ...]``.

Writes render.png, render_tiles.png, progress.gif and the metrics into Hydra's run directory.
A mistake in the configuration ends with one line naming it and exit status 2.
"""

import logging
import os
import sys
from pathlib import Path

# This file is named like the package it drives: import the package, not this file.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from render.config import check_values, register_configs  # noqa: E402
from render.errors import UserError  # noqa: E402

register_configs()


@hydra.main(config_path="../configs", config_name="render", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        # Before torch and Lightning are imported: a bad value is reported in a second.
        check_values(cfg)
        from render.run import render

        render(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as error:
        logging.getLogger("render").error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
