"""A render's recipe: what made a picture, carried inside the picture.

The recipe is the resolved config, the command line and its overrides, the config groups'
options, the seed, the versions of tiledream, Python, torch, torchvision, Lightning and timm,
and the model's weight file with its SHA-256. It is one YAML document (ASCII, so that TIFF's
ASCII tags hold it as it is), written into every picture a render writes and read back by
``tiledream info`` and ``tiledream replay``:

- PNG (``render.png``, ``render_tiles.png``): a compressed iTXt chunk ``tiledream recipe``, and
  ``Software``. Text chunks are ancillary: every PNG reader skips those it does not use.
- TIFF (``render.tif``): ImageDescription (see render/pictures.py's ``write_tiff``).
- GIF (``progress.gif``): the comment extension.
- DZI (``render.dzi``): a ``recipe`` element of its own namespace in the descriptor.

This module imports neither torch nor Lightning at load time: ``tiledream info`` answers at once.
"""

from __future__ import annotations

import copy
import platform
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from xml.sax.saxutils import escape

import yaml
from omegaconf import DictConfig, OmegaConf
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from render.config import AtlasObjective, ClassLogitObjective
from render.errors import UserError

if TYPE_CHECKING:
    from render.models import FeatureModel

__all__ = ["Launch", "Recipe", "Weights", "read_recipe", "versions", "without_resume"]

#: The first key of the YAML document, and its format's number.
FORMAT_KEY = "tiledream_recipe"
FORMAT = 1
#: The PNG text chunk's keyword.
PNG_KEY = "tiledream recipe"
#: The namespace of the recipe element in a DZI descriptor. The DZI schema has no place for
#: metadata; an element of another namespace is how XML extends a document, and viewers
#: (OpenSeadragon, libvips) read only the Image element's attributes and its Size child.
DZI_NAMESPACE = "urn:tiledream:recipe"
#: libyaml's safe dumper where PyYAML has it: a recipe in 2 ms instead of 14.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: What tiledream's recipe records the versions of: the code that computes the pixels.
PACKAGES = ("tiledream", "python", "torch", "torchvision", "lightning", "timm")


def versions() -> dict[str, str]:
    """This machine's versions of :data:`PACKAGES`."""
    from importlib.metadata import PackageNotFoundError, version

    import pytorch_lightning
    import timm
    import torch
    import torchvision

    try:
        own = version("tiledream")
    except PackageNotFoundError:  # run from a checkout (PYTHONPATH), not installed
        own = "unknown (not installed)"
    return {
        "tiledream": own,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "lightning": str(pytorch_lightning.__version__),
        "timm": str(timm.__version__),
    }


@dataclass(frozen=True)
class Weights:
    """The model and the file its weights came from, with the file's SHA-256 (both None for
    a model given as a Python object)."""

    model: str
    file: str | None
    sha256: str | None

    @classmethod
    def of(cls, model: FeatureModel) -> Weights:
        """``model``'s weight file and its checksum (cached: render/checksum.py)."""
        from render.checksum import sha256

        file = model.weights_file
        return cls(model.name, file, None if file is None else sha256(file))


@dataclass(frozen=True)
class Launch:
    """How a render was asked for, besides its config.

    ``program`` and ``overrides`` make its command line (``tiledream``, ``seed=3``);
    ``choices``: the option each config group took (``{"model": "timm"}``); ``in_python``: the
    parts given as Python objects (``render_image(model=...)``), which the config does not
    describe; ``replaying``: the recipe that ``tiledream replay`` renders again.
    """

    program: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    choices: Mapping[str, str] = field(default_factory=dict)
    in_python: tuple[str, ...] = ()
    replaying: Recipe | None = None


@dataclass(frozen=True)
class Recipe:
    """What made a picture (see the module's docstring)."""

    command: str
    overrides: tuple[str, ...]
    seed: int
    versions: Mapping[str, str]
    weights: Weights
    choices: Mapping[str, str]
    config: Mapping[str, Any]
    in_python: tuple[str, ...] = ()

    @classmethod
    def make(cls, cfg: DictConfig, launch: Launch, weights: Weights) -> Recipe:
        """The recipe of a render of ``cfg`` (resolved as it ran: ``render.tiles_per_step``
        holds the number it used) started as ``launch`` with ``weights``.

        ``resume`` is left out (false): a resumed render's picture is the uninterrupted
        render's, and so is its recipe.
        """
        overrides = without_resume(launch.overrides)
        config = cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True))
        return cls(
            command=shlex.join([*launch.program, *overrides]),
            overrides=tuple(overrides),
            seed=int(cfg.seed),
            versions=versions(),
            weights=weights,
            choices=dict(launch.choices),
            config={**config, "resume": False},
            in_python=tuple(launch.in_python),
        )

    @property
    def names_classes(self) -> bool:
        """Whether the objective has a class logit anywhere in it (a class render, or a layout
        of classes, may be; :class:`render.objectives.class_layout.ClassLayout` says which),
        read from the config alone."""

        def has_class(node: object) -> bool:
            if isinstance(node, Mapping):
                target = node.get("_target_")
                if target == ClassLogitObjective._target_ or (
                    target == AtlasObjective._target_ and node.get("classes") is not None
                ):
                    return True
                return any(has_class(value) for value in node.values())
            return isinstance(node, list) and any(has_class(value) for value in node)

        return has_class(self.config.get("objective"))

    def program(self) -> list[str]:
        """The command line's words before its overrides (``["tiledream"]``)."""
        words = shlex.split(self.command)
        return words[: len(words) - len(self.overrides)]

    @cached_property
    def text(self) -> str:
        """The recipe as a YAML document (ASCII): command, seed, versions and weights first.

        Made once for all the files of a render.
        """
        document = {
            FORMAT_KEY: FORMAT,
            "command": self.command,
            "overrides": list(self.overrides),
            "seed": self.seed,
            "versions": dict(self.versions),
            "weights": {
                "model": self.weights.model,
                "file": self.weights.file,
                "sha256": self.weights.sha256,
            },
            "in_python": list(self.in_python),
            "choices": dict(self.choices),
            "config": dict(self.config),
        }
        return yaml.dump(document, Dumper=_DUMPER, sort_keys=False, allow_unicode=False, width=100)

    @classmethod
    def loads(cls, text: str, source: str) -> Recipe:
        """The recipe in ``text`` (from :attr:`text`); UserError naming ``source`` if it is
        not one."""
        try:
            document = yaml.safe_load(text)
            if not isinstance(document, dict) or FORMAT_KEY not in document:
                raise ValueError("no recipe")
            if document[FORMAT_KEY] != FORMAT:
                raise UserError(
                    f"{source} carries a recipe of format {document[FORMAT_KEY]!r}; this "
                    f"tiledream reads format {FORMAT}: use the tiledream that wrote it"
                )
            weights = document["weights"]
            return cls(
                command=str(document["command"]),
                overrides=tuple(document["overrides"]),
                seed=int(document["seed"]),
                versions=dict(document["versions"]),
                weights=Weights(weights["model"], weights["file"], weights["sha256"]),
                choices=dict(document["choices"]),
                config=dict(document["config"]),
                in_python=tuple(document.get("in_python") or ()),
            )
        except (yaml.YAMLError, ValueError, KeyError, TypeError):
            raise UserError(
                f"{source} carries no tiledream recipe (a render writes one into each picture; "
                f"a program that rewrote this file may have dropped it)"
            ) from None

    def png_info(self) -> PngInfo:
        """PNG text chunks for Pillow's ``save(pnginfo=...)``: the recipe (compressed: the
        config is a few kilobytes) and ``Software``."""
        info = PngInfo()
        info.add_text("Software", f"tiledream {self.versions['tiledream']}")
        info.add_itxt(PNG_KEY, self.text, zip=True)
        return info

    def write_into_dzi(self, path: Path) -> None:
        """Add the recipe to the DZI descriptor at ``path`` (libvips' output), in place."""
        descriptor = path.read_text()
        element = f'  <recipe xmlns="{DZI_NAMESPACE}">{escape(self.text)}</recipe>\n'
        path.write_text(descriptor.replace("</Image>", element + "</Image>", 1))

    def differences(self, versions: Mapping[str, str], weights: Weights) -> list[str]:
        """What differs between this recipe and a render on ``versions`` with ``weights``:
        ``"torch 2.5.0 (the recipe's 2.4.1)"``, one phrase each."""
        found = [
            f"{name} {versions.get(name)} (the recipe's {self.versions.get(name)})"
            for name in PACKAGES
            if versions.get(name) != self.versions.get(name)
        ]
        if weights.sha256 != self.weights.sha256:
            found.append(
                f"{weights.model} weights sha256 {weights.sha256} "
                f"(the recipe's {self.weights.sha256})"
            )
        return found

    def describe(self) -> str:
        """The recipe for a reader: command, seed, versions, weights, then the config."""
        weights = self.weights
        lines = [
            f"command:   {self.command}",
            f"overrides: {shlex.join(self.overrides) or '(none)'}",
            f"seed:      {self.seed}",
            "versions:  " + ", ".join(f"{k} {v}" for k, v in self.versions.items()),
            f"model:     {weights.model}",
            f"weights:   sha256 {weights.sha256}  {weights.file}"
            if weights.file
            else "weights:   none recorded (the model was given in Python)",
            "groups:    " + " ".join(f"{k}={v}" for k, v in self.choices.items()),
        ]
        if self.in_python:
            lines.append(
                f"python:    the {' and '.join(self.in_python)} came as Python objects "
                f"(render_image), which the config does not describe"
            )
        config = yaml.safe_dump(dict(self.config), sort_keys=False, allow_unicode=True)
        lines += ["config:", *("  " + line for line in config.splitlines())]
        return "\n".join(lines)

    def overrides_with(self, overrides: Sequence[str]) -> tuple[str, ...]:
        """The recipe's overrides followed by ``overrides``: the overrides of a replay's command
        line. Each replaces the recipe's own for its key, and a group chosen anew those of the
        group's values (``objective=channel`` drops ``objective.class_index=5``)."""
        given = set(_override_keys(overrides))
        regrouped = self._regrouped(overrides)
        kept = [
            override
            for override, key in zip(self.overrides, _override_keys(self.overrides), strict=True)
            if key not in given and not _under(self._path(key), regrouped)
        ]
        return (*kept, *overrides)

    def _path(self, key: str) -> str:
        """Where an override's key lands in the config (a group's option: at its package)."""
        return _package_path(key) if key in self.choices else key

    def _regrouped(self, overrides: Sequence[str]) -> list[str]:
        """Where the groups that ``overrides`` choose anew land in the config."""
        return [_package_path(key) for key in _override_keys(overrides) if key in self.choices]

    def replay_config(self, overrides: Sequence[str], configs: str) -> dict[str, Any]:
        """A primary Hydra config that composes this recipe again: ``configs``' render.yaml
        with the recipe's group options, then the recipe's config over it.

        A group that ``overrides`` choose anew (``objective=deepdream``) takes its own
        option's values: the recipe's option and values for that group are left out.
        """
        config = copy.deepcopy(dict(self.config))
        regrouped = self._regrouped(overrides)
        defaults: list[Any] = ["render"]
        for group, option in self.choices.items():
            # The experiment's values are in the config already; applied again, its own
            # group overrides would clash with the recipe's.
            if group != "experiment" and not _under(_package_path(group), regrouped):
                defaults.append({f"override {group}": option})
        for path in regrouped:
            _drop(config, path)
        return {
            "defaults": [*defaults, "_self_"],
            "hydra": {"searchpath": [f"file://{configs}"]},
            **config,
        }


def without_resume(overrides: Sequence[str]) -> list[str]:
    """``overrides`` but ``resume=...``, which says how a render went on, not what it makes."""
    keys = _override_keys(overrides)
    return [o for o, key in zip(overrides, keys, strict=True) if key != "resume"]


def _override_keys(overrides: Sequence[str]) -> list[str]:
    """The key (or group) each override sets: ``+trainer.x=1`` -> ``trainer.x``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise UserError(f"overrides {list(overrides)}: {error}") from None
    return [o.get_key_element().lstrip("+~") for o in parsed]


def _under(path: str, prefixes: Sequence[str]) -> bool:
    """Whether config ``path`` is one of ``prefixes`` or inside one."""
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def _package_path(group: str) -> str:
    """Where a group's option goes in the config: ``objective@objective.start`` ->
    ``objective.start``, ``model`` -> ``model``."""
    return group.split("@", 1)[1] if "@" in group else group.replace("/", ".")


def _drop(config: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    node: Any = config
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def read_recipe(path: str | Path) -> Recipe:
    """The recipe carried by a PNG, TIFF, GIF, DZI or MP4 file; UserError if it carries none."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            head = file.read(16)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") or head[:6] in (b"GIF87a", b"GIF89a"):
            text = _pillow_text(path)
        elif head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
            text = _tiff_text(path)
        elif head.lstrip().startswith(b"<"):
            text = _dzi_text(path)
        elif head[4:8] == b"ftyp":
            text = _mp4_text(path)
        else:
            raise UserError(
                f"{path} is not a PNG, TIFF, GIF, DZI or MP4 file, so it carries no tiledream "
                f"recipe"
            )
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as error:
        # SyntaxError: what Pillow and ElementTree raise for a damaged file.
        raise UserError(f"cannot read {path}: {error}") from None
    return Recipe.loads(text or "", str(path))


def _pillow_text(path: Path) -> str | None:
    """The recipe chunk of a PNG or the comment of a GIF, without decoding the pixels."""
    with Image.open(path) as image:
        if image.format == "PNG":
            return image.info.get(PNG_KEY)
        comment = image.info.get("comment")
        return comment.decode("ascii", "replace") if isinstance(comment, bytes) else None


def _tiff_text(path: Path) -> str | None:
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        description = tiff.pages.first.description
    return description or None


def _mp4_text(path: Path) -> str | None:
    """The comment of a video's container (render/motion/encode.py writes the recipe there)."""
    import av

    with av.open(str(path)) as container:
        return container.metadata.get("comment")


def _dzi_text(path: Path) -> str | None:
    found = ET.parse(path).getroot().find(f"{{{DZI_NAMESPACE}}}recipe")
    return None if found is None else found.text
