"""List a model's hookable layers and their channel counts, to pick ``objective.layer``.

    python scripts/layers.py [model=efficientnet_lite0|googlenet|vgg16|resnet50|timm ...]

The same as the installed ``tiledream-layers`` command (``render.cli.layers``). Takes the same
``model=...`` overrides as scripts/render.py; prints ``name<TAB>channels<TAB>HxW``.
"""

import os
import sys

# This folder holds render.py, which would shadow the ``render`` package: import the package.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

from render.cli import layers  # noqa: E402

if __name__ == "__main__":
    sys.exit(layers())
