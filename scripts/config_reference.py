"""The configuration reference, generated from the structured-config schema so it cannot drift.

Every key a render takes, with its default, its rule and its meaning: the defaults are Hydra's
composition of ``configs/`` (``render.yaml`` for the top level, each option of a config group
for its keys), the rules are those the command line checks before a render (``render/rules.py``,
declared on the fields of ``render/config.py``), the meanings are the fields' docstrings, and a
config group option's description is its YAML file's opening comment.

``mkdocs build`` writes it as ``reference/configuration.md`` (``scripts/mkdocs_hooks.py``);
``python scripts/config_reference.py`` prints it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "scripts"]
sys.path.insert(0, str(ROOT))

import griffe  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402
from omegaconf import DictConfig, ListConfig, OmegaConf  # noqa: E402

from render.config import TRAINER_RULES, config_dir, register_configs  # noqa: E402
from render.rules import Number  # noqa: E402

#: The config groups a render composes, in the order of ``render.yaml``'s defaults.
GROUPS = ("model", "objective", "param", "transforms", "init", "optim")
#: Keys that tell Hydra what to build, not what the user sets.
HYDRA_KEYS = ("_target_", "_partial_")
#: The config that holds every option of every group (and the key it puts them under).
OPTIONS = "reference_options"
#: The sections of the render's own schema (render/config.py ``RenderConfig``), in page order.
SECTIONS = ("tiling", "render", "checkpoint", "output", "video")
#: A default list longer than this shows its first values and its length.
LONGEST_LIST = 8

INTRO = """\
# Configuration reference

Every key of a render, as `python scripts/render.py KEY=VALUE` (or `tiledream KEY=VALUE`)
takes it: its default, the rule the command line checks before a render starts (a value that
breaks it is one `error:` line and exit status 2) and what it means. This page is generated from
the structured-config schema (`render/config.py`) and `configs/` when the site is built, so it
cannot drift from the code. `null` is Python's None, `???` a value that must be given.

A config group is chosen as `GROUP=OPTION` (`objective=class_logit`); its keys are then set as
`GROUP.KEY=VALUE` (`objective.class_index=1`). Hydra's own keys work too: `hydra.run.dir=DIR`
(the run folder, `outputs/<date>/<time>` by default), `-m` (a sweep, one run folder per job in
`multirun/<date>/<time>/`), `hydra/launcher=slurm_gpu` or `submitit_local`, and `+gallery=true`
on a sweep ([Sweeps and galleries](../guide/sweeps.md)).
"""


@dataclass(frozen=True)
class Row:
    """One key of the reference, each part as the page shows it."""

    key: str
    default: str
    rule: str
    meaning: str


@dataclass(frozen=True)
class Section:
    """A table of keys under a heading, with a sentence about them."""

    title: str
    about: str
    rows: tuple[Row, ...]


@functools.cache
def field_docs(schema: type) -> dict[str, str]:
    """The docstrings of ``schema``'s fields (the string under each), read by griffe."""
    module = sys.modules[schema.__module__]
    parsed = griffe.visit(module.__name__, Path(inspect.getfile(module)), inspect.getsource(module))
    members = parsed[schema.__name__].members
    return {
        name: " ".join(member.docstring.value.split())
        for name, member in members.items()
        if member.docstring is not None
    }


def shown(value: Any) -> str:
    """A default as the command line writes it: ``null``, ``true``, ``[224, 224]``."""
    if isinstance(value, ListConfig | DictConfig):
        value = OmegaConf.to_container(value, resolve=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return f"{len(value)} configs"
    if isinstance(value, list) and len(value) > LONGEST_LIST:
        head = ", ".join(shown(v) for v in value[:3])
        return f"[{head}, ... ({len(value)} values)]"
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)


#: A field's type in words, for fields without a number's rule.
TYPE_WORDS = {
    "bool": "true or false",
    "str": "a string",
    "None": "null",
    "Any": "a config",
    "list[Any]": "a list of configs",
    "Union[str, bool]": "a string, or false",
}


def rule_of(field: dataclasses.Field[Any]) -> str:
    """The rule the command line checks (render/rules.py), else the field's type in words."""
    number = field.metadata.get("rule")
    if number is None:
        parts = str(field.type).split(" | ")
        return ", or ".join(TYPE_WORDS.get(part, part) for part in parts)
    words = number.describe()
    if "list" in str(field.type):
        words = f"a list, each {words}"
    return f"{words}, or null" if "None" in str(field.type) else words


def rows(node: DictConfig, prefix: str) -> Iterator[Row]:
    """The keys of ``node`` (a composed config of a schema) and of the configs nested in it."""
    schema = OmegaConf.get_type(node)
    fields = (
        {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    )
    docs = field_docs(schema) if fields else {}
    for name in node:
        name = str(name)
        if name in HYDRA_KEYS:
            continue
        key, field = f"{prefix}{name}", fields[name]
        if OmegaConf.is_interpolation(node, name):
            # Another key's value (``${model}``): shown as written, as a config file has it.
            value = OmegaConf.to_container(node, resolve=False)[name]
        else:
            value = "???" if OmegaConf.is_missing(node, name) else node[name]
        nested = isinstance(value, DictConfig) and "_target_" in value
        default = f"`{value._target_}`" if nested else f"`{shown(value)}`"
        yield Row(f"`{key}`", default, rule_of(field), docs.get(name, ""))
        if nested and dataclasses.is_dataclass(OmegaConf.get_type(value)):
            yield from rows(value, f"{key}.")


def flat(tree: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf of ``tree``, a plain dict from a config."""
    if not isinstance(tree, dict):
        yield prefix.rstrip("."), tree
        return
    for name, value in tree.items():
        yield from flat(value, f"{prefix}{name}.")


def opening_comment(path: Path) -> str:
    """The comment a config file opens with, as one line (command examples left out)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("python ") and lines:
            lines[-1] = lines[-1].rstrip(":") + "."
        elif text and text != "@package _global_":
            lines.append(text)
    return " ".join(lines)


def options(group: str) -> list[str]:
    """The options of a config group: its YAML files in ``configs/``."""
    return sorted(path.stem for path in (Path(config_dir()) / group).glob("*.yaml"))


def top_level(cfg: DictConfig) -> Section:
    """The render's own keys: the config groups chosen, the seed, resume."""
    fields = {f.name: f for f in dataclasses.fields(OmegaConf.get_type(cfg))}
    docs = field_docs(OmegaConf.get_type(cfg))
    choices = cfg.hydra.runtime.choices
    found = []
    for name in GROUPS:
        chosen = ", ".join(f"`{option}`" for option in options(name))
        found.append(Row(f"`{name}`", f"`{choices[name]}`", f"one of {chosen}", docs[name]))
    for name in ("seed", "resume"):
        found.append(Row(f"`{name}`", f"`{shown(cfg[name])}`", rule_of(fields[name]), docs[name]))
    return Section(
        "The render", "The config groups and the keys of the render itself.", tuple(found)
    )


def trainer(cfg: DictConfig) -> Section:
    """The keys ``render.yaml`` gives ``trainer`` (passed to Lightning, not a schema)."""
    found = []
    for name in cfg.trainer:
        key = f"trainer.{name}"
        number: Number | None = TRAINER_RULES.get(key)
        found.append(
            Row(
                f"`{key}`",
                f"`{shown(cfg.trainer[name])}`",
                number.describe() if number else "what Lightning's Trainer takes",
                f"Lightning's `Trainer({name}=...)`.",
            )
        )
    about = field_docs(OmegaConf.get_type(cfg))["trainer"]
    about += " A key not listed here is added with `+trainer.KEY=VALUE`."
    return Section("`trainer`", about, tuple(found))


def option(group: str, name: str, node: DictConfig, others: dict[str, Any]) -> Section:
    """One option of a config group, composed as ``node`` (``others``: the keys it sets
    outside its group): what it builds and its keys."""
    about = opening_comment(Path(config_dir()) / group / f"{name}.yaml")
    builds = f"Builds `{node._target_}`."
    also = [
        f"`{key}={shown(value)}`"
        for top, value in others.items()
        for key, value in flat(OmegaConf.to_container(value), f"{top}.")
    ]
    also_text = f" Also sets {', '.join(also)}." if also else ""
    return Section(
        f"`{group}={name}`", f"{about} {builds}{also_text}".strip(), tuple(rows(node, f"{group}."))
    )


def every_option() -> dict[tuple[str, str], tuple[DictConfig, dict[str, Any]]]:
    """``(group, option) -> (its node, the keys it sets outside its group)`` for every option of
    every config group, composed by Hydra in one config (a group may be placed at several
    packages: option NAME of GROUP at ``OPTIONS.GROUP.NAME``)."""
    defaults = [
        {f"{group}@{OPTIONS}.{group}.{name}": name} for group in GROUPS for name in options(group)
    ]
    register_configs()
    ConfigStore.instance().store(name=OPTIONS, node={"defaults": defaults})
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        composed = compose(OPTIONS)[OPTIONS]
    found = {}
    for group in GROUPS:
        for name in options(group):
            node, others = composed[group][name], {}
            if not dataclasses.is_dataclass(OmegaConf.get_type(node)):
                # A global option (``@package _global_``): its group's node, and keys elsewhere.
                others = {key: node[key] for key in node if key != group}
                node = node[group]
            found[group, name] = (node, others)
    return found


def sections() -> list[Section]:
    """Every section of the reference, in the page's order."""
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("render", return_hydra_config=True)
    found = [top_level(cfg)]
    docs = field_docs(OmegaConf.get_type(cfg))
    for name in SECTIONS:
        found.append(Section(f"`{name}`", docs[name], tuple(rows(cfg[name], f"{name}."))))
    found.append(trainer(cfg))
    found += [option(group, name, *parts) for (group, name), parts in every_option().items()]
    return found


def experiments() -> list[tuple[str, str]]:
    """The named presets: ``experiment=NAME`` and what each is."""
    folder = Path(config_dir()) / "experiment"
    return [(path.stem, opening_comment(path)) for path in sorted(folder.glob("*.yaml"))]


def markdown() -> str:
    """The reference page."""
    parts = [INTRO]
    for section in sections():
        parts.append(f"## {section.title}\n\n{section.about}\n")
        if section.rows:
            table = ["| key | default | rule | meaning |", "|---|---|---|---|"]
            table += [f"| {r.key} | {r.default} | {r.rule} | {r.meaning} |" for r in section.rows]
            parts.append("\n".join(table) + "\n")
    parts.append(
        "## `experiment`\n\nNamed presets in `configs/experiment/`, each a set of the keys above: "
        "`experiment=NAME`, and any key given after it wins.\n"
    )
    table = ["| preset | what it renders |", "|---|---|"]
    table += [f"| `experiment={name}` | {about} |" for name, about in experiments()]
    parts.append("\n".join(table) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
