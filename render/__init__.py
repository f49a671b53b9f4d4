"""The tiled feature-visualisation renderer: Hydra configs in, a Lightning module optimising tiles.

From Python: ``from render import render_image, objectives`` (:mod:`render.api`). From a shell:
``python scripts/render.py``. The pieces are ``render.run.render`` (one render from a composed
config), ``render.renderer.TileRenderer`` (the LightningModule) and the packages ``models``,
``objectives`` and ``params``.
"""

from typing import Any

__all__ = ["compose_config", "render_image"]


def __getattr__(name: str) -> Any:
    # Lazy: `import render.objectives` should not pay for importing Lightning.
    if name in __all__:
        from render import api

        return getattr(api, name)
    raise AttributeError(f"module 'render' has no attribute {name!r}")
