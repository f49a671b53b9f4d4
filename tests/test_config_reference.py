"""The configuration reference (generated for the docs) lists every key of the schema, with the
default a render gets, the rule the command line checks and a meaning."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from conftest import ROOT
from omegaconf import DictConfig, OmegaConf

from render.config import SCHEMAS, TRAINER_RULES, RenderConfig, compose_config
from scripts.config_reference import SECTIONS, every_option, markdown, shown
from scripts.mkdocs_hooks import REFERENCE


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[str, tuple[str, str, str]]]:
    """The reference's tables: heading -> key -> (default, rule, meaning), as the page shows
    them (backticks removed)."""
    found: dict[str, dict[str, tuple[str, str, str]]] = {}
    heading = ""
    for line in markdown().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip("`")
            found[heading] = {}
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if line.startswith("| `") and len(cells) == 4:
            key, default, rule, meaning = (cell.strip("`") for cell in cells)
            found[heading][key] = (default, rule, meaning)
    return found


def fields(schema: type) -> list[dataclasses.Field]:
    """The keys a user sets (not Hydra's ``_target_`` and ``_partial_``)."""
    return [f for f in dataclasses.fields(schema) if not f.name.startswith("_")]


def option_schemas() -> list[tuple[str, str, type]]:
    """``(group, option, schema)`` of every option of every group, as Hydra composes it."""
    found = [(g, n, OmegaConf.get_type(node)) for (g, n), (node, _) in every_option().items()]
    for group, _, schema in found:
        assert schema in SCHEMAS[group].values(), f"{schema} is not a schema of {group}"
    return found


def leaves(node: DictConfig, prefix: str) -> dict[str, object]:
    """Dotted key -> value of every leaf that is not a nested objective's or Hydra's."""
    found: dict[str, object] = {}
    for name in node:
        key = f"{prefix}{name}"
        if str(name).startswith("_"):
            continue
        value = "???" if OmegaConf.is_missing(node, name) else node[name]
        if isinstance(value, DictConfig) and "_target_" in value:
            found.update(leaves(value, f"{key}."))
        else:
            found[key] = value
    return found


def test_every_key_of_the_render_schema_is_listed_with_its_rule_and_a_meaning(tables):
    for section in SECTIONS:
        schema = typing.get_type_hints(RenderConfig)[section]
        listed = tables[section]
        for field in fields(schema):
            key = f"{section}.{field.name}"
            assert key in listed, f"{key} is not in the reference"
            _, rule, meaning = listed[key]
            assert meaning, f"{key} has no meaning: give its field a docstring"
            if "rule" in field.metadata:
                assert field.metadata["rule"].describe() in rule, key
    top = tables["The render"]
    for field in fields(RenderConfig):
        if field.name not in (*SECTIONS, "trainer"):
            assert field.name in top and top[field.name][2], field.name
    for key, number in TRAINER_RULES.items():
        assert number.describe() in tables["trainer"][key][1]


def test_every_option_of_every_group_is_listed_with_its_schemas_keys(tables):
    options = option_schemas()
    assert len(options) == sum(len(list((ROOT / "configs" / g).glob("*.yaml"))) for g in SCHEMAS)
    for group, name, schema in options:
        listed = tables[f"{group}={name}"]
        for field in fields(schema):
            key = f"{group}.{field.name}"
            assert key in listed, f"{key} of {group}={name} is not in the reference"
            assert listed[key][2], f"{key} has no meaning: give its field a docstring"
            if "rule" in field.metadata:
                assert field.metadata["rule"].describe() in listed[key][1], key


def default_choice(group: str) -> str:
    """The option of ``group`` that render.yaml chooses."""
    defaults = OmegaConf.load(ROOT / "configs" / "render.yaml").defaults
    return next(str(e[group]) for e in defaults if isinstance(e, DictConfig) and group in e)


@pytest.mark.parametrize("chosen", [[], ["objective=interpolate"], ["init=image", "model=timm"]])
def test_the_defaults_are_those_a_render_gets(tables, chosen):
    cfg = compose_config(chosen)
    choices = {group: default_choice(group) for group in SCHEMAS}
    choices.update(option.split("=") for option in chosen)
    sections = [(f"{group}={option}", group) for group, option in choices.items()]
    if not chosen:  # init=image changes tiling.base_size: the sections list render.yaml's
        sections += [(name, name) for name in (*SECTIONS, "trainer")]
    for heading, node in sections:
        for key, value in leaves(cfg[node], f"{node}.").items():
            listed = tables[heading][key][0]
            assert listed == shown(value), f"{key}: {listed} listed, {value} composed"
    for name in ("seed", "resume"):
        assert tables["The render"][name][0] == shown(cfg[name])


def test_the_site_builds_the_reference_where_the_nav_has_it():
    assert f"Configuration: {REFERENCE}" in (ROOT / "mkdocs.yml").read_text()
    assert not (ROOT / "docs" / REFERENCE).exists(), "generated, never written by hand"
