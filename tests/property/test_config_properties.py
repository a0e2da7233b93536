"""Seed Properties 20 and 21: package configuration files (config/packages/*.yaml).

Valid mappings are generated from the seed's configuration format, written out with
PyYAML and parsed by `parse_package_config`; the three files the project ships are
checked as they are and in re-formatted forms.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from debrepo.errors import ConfigError
from debrepo.packages_config import PackageConfig, load_package_configs, parse_package_config
from tests.conftest import CONFIG_DIR
from tests.property.strategies import (
    CONFIG_REQUIRED_KEYS,
    SOURCE_REQUIREMENTS,
    package_config_mappings,
    yaml_values,
)

SHIPPED = ("kiro", "kiro-repo", "kiro-cli")


def origin_of(data: dict[str, Any]) -> str:
    return f"config/packages/{data.get('package_name', 'unnamed')}.yaml"


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def assert_config_says(config: PackageConfig, data: dict[str, Any]) -> None:
    """The parsed configuration holds what the YAML mapping holds."""
    for key in ("package_name", "maintainer", "homepage", "section", "priority", "architecture"):
        assert getattr(config, key) == data[key], key
    assert config.description.strip() == data["description"].strip()
    source = data["source"]
    assert config.source.type == source["type"]
    for key in ("metadata_endpoint", "staging_prefix", "repository", "asset_pattern"):
        assert getattr(config.source, key) == source.get(key), f"source.{key}"
    assert config.depends == data.get("depends")
    assert tuple(config.additional_files) == tuple(data.get("additional_files") or ())
    if "build" in data:
        assert config.build is not None
        assert config.build.script_path == data["build"]["script_path"]
        assert config.build.template_dir == data["build"]["template_dir"]


def assert_well_typed(config: PackageConfig) -> None:
    """What the parser accepts is usable: every required field non-empty text."""
    for key in CONFIG_REQUIRED_KEYS:
        if key != "source":
            value = getattr(config, key)
            assert isinstance(value, str) and value.strip(), key
    assert config.source.type in SOURCE_REQUIREMENTS
    for key in SOURCE_REQUIREMENTS[config.source.type]:
        value = getattr(config.source, key)
        assert isinstance(value, str) and value.strip(), f"source.{key}"


@settings(max_examples=100, deadline=None)
@given(data=package_config_mappings())
def test_property_21_configuration_file_format(data: dict[str, Any]) -> None:
    """Feature: unified-multi-package-repo, Property 21: Configuration File Format

    Any configuration in the seed's format, written as YAML, parses without error into
    a configuration holding exactly what the file says.
    """
    config = parse_package_config(dump(data), origin_of(data))
    assert_config_says(config, data)


@settings(max_examples=100, deadline=None)
@given(
    data=package_config_mappings(),
    key=st.sampled_from(CONFIG_REQUIRED_KEYS),
    value=yaml_values,
)
def test_property_21_malformed_file_is_a_config_error_naming_the_file(
    data: dict[str, Any], key: str, value: object
) -> None:
    """Feature: unified-multi-package-repo, Property 21: Configuration File Format

    Whatever a field holds instead of what it should (a number, a list, a date, a
    mapping, nothing), parsing either fails with a ConfigError that names the file, never
    with any other exception, or yields a configuration whose required fields are text.
    """
    data[key] = value
    origin = origin_of({})
    try:
        config = parse_package_config(dump(data), origin)
    except ConfigError as error:
        assert origin in str(error)
    else:
        assert_well_typed(config)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_property_21_any_text_parses_or_is_a_config_error(text: str) -> None:
    """Feature: unified-multi-package-repo, Property 21: Configuration File Format

    Any text at all, valid YAML or not, is either a usable configuration or a
    ConfigError naming the file; the parser never fails in any other way.
    """
    origin = "config/packages/fuzzed.yaml"
    try:
        config = parse_package_config(text, origin)
    except ConfigError as error:
        assert origin in str(error)
    else:
        assert_well_typed(config)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(SHIPPED), comments=st.booleans(), order=st.data())
def test_property_21_shipped_configuration_files_are_valid_yaml(
    name: str, comments: bool, order: st.DataObject
) -> None:
    """Feature: unified-multi-package-repo, Property 21: Configuration File Format

    Each file in config/packages/ is valid YAML that parses (alone, and with the whole
    directory) into what it says, and any re-formatting of it (keys reordered, comments
    added) parses into the same configuration.
    """
    path = CONFIG_DIR / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    shipped = parse_package_config(text, str(path))
    assert_config_says(shipped, data)
    loaded = load_package_configs(CONFIG_DIR)
    assert sorted(loaded) == sorted(SHIPPED)
    assert loaded[name] == shipped

    shuffled = order.draw(st.permutations(list(data.items())))
    rewritten = yaml.safe_dump(dict(shuffled), allow_unicode=True, sort_keys=False)
    if comments:
        rewritten = "# reformatted\n" + rewritten.replace("\n", "\n# note\n", 2)
    assert parse_package_config(rewritten, str(path)) == shipped


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(SHIPPED),
    removed=st.sets(st.sampled_from((*CONFIG_REQUIRED_KEYS, "source.type")), min_size=1),
)
def test_property_20_shipped_files_hold_every_required_field(name: str, removed: set[str]) -> None:
    """Feature: unified-multi-package-repo, Property 20: Configuration File Completeness

    Each shipped configuration file holds every required field and a source with a
    type; with any of them taken away, the parser refuses it naming each one taken.
    """
    path = CONFIG_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in CONFIG_REQUIRED_KEYS:
        assert data.get(key) not in (None, ""), key
    assert isinstance(data["source"], dict) and data["source"].get("type")

    broken = copy.deepcopy(data)
    for field in removed - {"source.type"}:
        del broken[field]
    if "source.type" in removed and "source" in broken:
        del broken["source"]["type"]
    with pytest.raises(ConfigError) as refused:
        parse_package_config(dump(broken), str(path))
    message = str(refused.value)
    assert str(path) in message
    for field in removed:
        if field != "source.type" or "source" not in removed:
            assert field in message, field


def required_paths(data: dict[str, Any]) -> list[str]:
    """Every field the file cannot do without: the seed's list, the source's type, and
    what that type of source needs to find new versions."""
    kind = data["source"]["type"]
    return [
        *CONFIG_REQUIRED_KEYS,
        "source.type",
        *(f"source.{key}" for key in SOURCE_REQUIREMENTS[kind]),
    ]


@st.composite
def mappings_without_a_required_field(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    data = draw(package_config_mappings())
    field = draw(st.sampled_from(required_paths(data)))
    return data, field


@settings(max_examples=100, deadline=None)
@given(case=mappings_without_a_required_field(), how=st.sampled_from(("remove", "null")))
def test_property_20_missing_required_field_is_named(
    case: tuple[dict[str, Any], str], how: str
) -> None:
    """Feature: unified-multi-package-repo, Property 20: Configuration File Completeness

    Removing any required field from a valid configuration (or leaving it empty) makes
    parsing fail with a ConfigError that names the field and the file.
    """
    data, field = case
    broken = copy.deepcopy(data)
    parent, _, leaf = field.rpartition(".")
    holder = broken[parent] if parent else broken
    if how == "remove":
        del holder[leaf]
    else:
        holder[leaf] = None
    origin = origin_of(data)
    with pytest.raises(ConfigError) as refused:
        parse_package_config(dump(broken), origin)
    message = str(refused.value)
    assert origin in message
    assert leaf in message
    if parent:
        assert field in message


@settings(max_examples=100, deadline=None)
@given(case=mappings_without_a_required_field(), value=st.sampled_from(("", "   ", [], {})))
def test_property_20_empty_required_field_is_named(
    case: tuple[dict[str, Any], str], value: object
) -> None:
    """Feature: unified-multi-package-repo, Property 20: Configuration File Completeness

    A required field present but empty (blank text, an empty list or mapping) is as
    good as missing: a ConfigError names the field and the file.
    """
    data, field = case
    broken = copy.deepcopy(data)
    parent, _, leaf = field.rpartition(".")
    (broken[parent] if parent else broken)[leaf] = value
    origin = origin_of(data)
    with pytest.raises(ConfigError) as refused:
        parse_package_config(dump(broken), origin)
    message = str(refused.value)
    assert origin in message
    assert leaf in message
