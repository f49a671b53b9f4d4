"""The Python API: ``render_image(objective, model=...)`` on the command line's code path.

``render_image()`` composes the same config as ``python scripts/render.py`` (``configs/`` plus
the overrides), builds the same parts and runs the same :func:`render.run.render`, so with the
same config and seed it gives the command line's pixels. A Python objective or model replaces
the config's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from PIL import Image
from torch import nn

from render.config import compose_config, compose_with_choices
from render.errors import RenderStopped, UserError
from render.models import FeatureModel, from_module
from render.objectives import Objective
from render.recipe import Launch
from render.run import render

__all__ = ["compose_config", "render_image"]


def _size_override(key: str, value: Sequence[int] | int | None) -> list[str]:
    """``key=[h,w]`` for a size given as (h, w) or one int (square); nothing for None."""
    if value is None:
        return []
    pair = [value, value] if isinstance(value, int) else list(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise UserError(f"{key} must be (height, width) of positive ints, got {value!r}")
    return [f"{key}=[{pair[0]},{pair[1]}]"]


def _feature_model(model: nn.Module | FeatureModel | None) -> FeatureModel | None:
    """A user's network as a FeatureModel (ImageNet mean/std unless it is one already)."""
    if model is None or isinstance(model, FeatureModel):
        return model
    if not isinstance(model, nn.Module):
        raise UserError(
            f"model must be a torch.nn.Module or a render.models.FeatureModel, "
            f"got {type(model).__name__}"
        )
    return from_module(model)


def render_image(
    objective: Objective | None = None,
    *,
    model: nn.Module | FeatureModel | None = None,
    size: Sequence[int] | int | None = None,
    tile: Sequence[int] | int | None = None,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
) -> Image.Image:
    """Render and return the canvas as a PIL image (RGBA, its alpha the transparency map, with
    ``output.alpha=true`` in ``overrides``).

    ``objective`` and ``model`` replace the config's (a plain ``nn.Module`` is normalised with
    ImageNet's mean and std; wrap it with :func:`render.models.from_module` for others or for a
    ``preprocess`` callable). ``size``, ``tile`` and ``seed`` set ``tiling.base_size``,
    ``tiling.tile_size`` and ``seed``; ``overrides`` are any command-line overrides. Every output
    of the command line goes to ``out_dir`` when it is given, else to a temporary folder that is
    removed before this returns. SIGTERM stops the render with
    :class:`render.errors.RenderStopped`, whose message says how to resume it.
    """
    if objective is not None and not isinstance(objective, Objective):
        raise UserError(
            f"objective must be a render.objectives.Objective (e.g. objectives.channel(...)), "
            f"got {type(objective).__name__}"
        )
    if isinstance(overrides, str):
        raise UserError(f"overrides must be a list of strings, got the string {overrides!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UserError(f"seed must be an int, got {seed!r}")
    composed = [
        *_size_override("tiling.base_size", size),
        *_size_override("tiling.tile_size", tile),
        *([f"seed={seed}"] if seed is not None else []),
        *overrides,
    ]
    cfg, choices = compose_with_choices(composed)
    if cfg.video.frames > 0 or choices.get("init") == "video":
        making = (
            "init=video" if choices.get("init") == "video" else f"video.frames={cfg.video.frames}"
        )
        raise UserError(
            f"render_image returns one picture, and {making} makes a "
            f"video: render it with render.run.render(cfg, run_dir) or the command line"
        )
    # The recipe names the command line that renders the same config (see the docstring).
    launch = Launch(
        program=("tiledream",),
        overrides=tuple(composed),
        choices=choices,
        in_python=tuple(
            name for name, part in (("model", model), ("objective", objective)) if part is not None
        ),
    )
    feature_model = _feature_model(model)
    run = partial(render, cfg, model=feature_model, objective=objective, launch=launch)
    try:
        if out_dir is not None:
            return _open(run(Path(out_dir)))
        with tempfile.TemporaryDirectory(prefix="tiledream_") as tmp:
            return _open(run(Path(tmp)))
    except RenderStopped as stopped:
        stopped.resume = (
            f"resume with the same render_image() call, out_dir={str(out_dir)!r} and "
            f"'resume=true' in its overrides"
            if out_dir is not None
            else "but it was in a temporary folder, now removed: give out_dir to keep it"
        )
        raise


def _open(png: Path) -> Image.Image:
    """The PNG's pixels (RGBA with ``output.alpha``), loaded (not lazily tied to a file that
    may be removed)."""
    with Image.open(png) as picture:
        return picture.convert("RGBA" if picture.mode == "RGBA" else "RGB")
