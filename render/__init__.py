"""The tiled feature-visualisation renderer: Hydra configs in, a Lightning module optimising tiles.

Entry point: ``python scripts/render.py``; the pieces are ``render.run.render`` (one render from a
composed config), ``render.renderer.TileRenderer`` (the LightningModule) and the packages
``models``, ``objectives`` and ``params``.
"""
