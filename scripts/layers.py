"""List a model's hookable layers and their channel counts, to pick ``objective.layer``.

    python scripts/layers.py [model=efficientnet_lite0|googlenet|vgg16|resnet50|timm ...]

Takes the same ``model=...`` overrides as scripts/render.py; prints ``name<TAB>channels``.
"""

import os
import sys

# This folder holds render.py, which would shadow the ``render`` package: import the package.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.errors import HydraException  # noqa: E402

from render.config import build, register_configs  # noqa: E402
from render.errors import UserError  # noqa: E402
from render.models import describe_layers  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def main(overrides: list[str]) -> int:
    """Print the layers of the configured model; return the exit status."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
            cfg = compose(config_name="render", overrides=overrides)
        layers = describe_layers(build(cfg.model))
    except (UserError, HydraException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, channels in layers:
        print(f"{name}\t{channels}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
