"""packages_config.py: every validation rule names the file and the field."""

from __future__ import annotations

import copy
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from debrepo.errors import ConfigError
from debrepo.packages_config import (
    SourceConfig,
    description_as_field,
    load_package_config,
    load_package_configs,
    parse_package_config,
)
from debrepo.yamlfiles import strict_loader
from tests.conftest import CONFIG_DIR

ORIGIN = "config/packages/demo.yaml"
VALID: dict[str, object] = {
    "package_name": "demo",
    "description": "Demo tool",
    "maintainer": "Demo Team <demo@example.com>",
    "homepage": "https://example.com/demo",
    "section": "devel",
    "priority": "optional",
    "architecture": "amd64",
    "source": {"type": "external_download", "metadata_endpoint": "https://example.com/meta.json"},
}


def config_text(**changes: object) -> str:
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


def problem(**changes: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_package_config(config_text(**changes), ORIGIN)
    message = str(caught.value)
    assert message.startswith(ORIGIN + ":"), message
    return message


def test_valid_config_parses():
    config = parse_package_config(config_text(), ORIGIN)
    assert config.package_name == "demo"
    assert config.source.type == "external_download"
    assert config.source.metadata_endpoint == "https://example.com/meta.json"
    assert config.source.staging_prefix is None
    assert config.origin == ORIGIN
    assert config.additional_files == ()
    assert config.build is None
    assert config.depends is None


def test_the_shipped_configs_load():
    configs = load_package_configs(CONFIG_DIR)
    assert set(configs) == {"kiro", "kiro-repo", "kiro-cli"}
    assert configs["kiro-repo"].source.staging_prefix == "staging/kiro-repo/"
    assert configs["kiro-repo"].build is not None
    assert configs["kiro-repo"].build.template_dir == "templates/kiro-repo/"
    assert configs["kiro"].additional_files == ("certificate", "signature")
    assert configs["kiro-cli"].source.repository == "kiro-dev/kiro-cli"
    assert configs["kiro-cli"].depends == "kiro (>= 1.0)"


def test_unknown_fields_are_named():
    message = problem(colour="blue", arch="amd64")
    assert "unknown field(s): arch, colour" in message


def test_unknown_fields_in_source_and_build():
    source = {"type": "build_script", "staging_prefix": "staging/demo/", "bucket": "x"}
    message = problem(source=source, build={"script_path": "a.sh", "shell": "bash"})
    assert "unknown field(s) in source: bucket" in message
    assert "unknown field(s) in build: shell" in message


def test_missing_required_fields_are_listed():
    message = problem(homepage=None, priority=None)
    assert "missing required field(s): homepage, priority" in message


@pytest.mark.parametrize(
    "maintainer",
    ["demo@example.com", "Demo Team", "Demo Team <demo>", "<demo@example.com>", "A <b@c> <d@e>"],
)
def test_bad_maintainer(maintainer):
    assert "field maintainer must look like 'Name <email@example.com>'" in problem(
        maintainer=maintainer
    )


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("package_name", "Demo", "field package_name:"),
        ("architecture", "x86_64", "field architecture:"),
        ("homepage", "example.com", "field homepage must be an http(s) URL"),
        ("homepage", "https://x.dev\nX-Evil: 1", "field homepage must be an http(s) URL"),
        ("homepage", "http://[::1", "field homepage must be an http(s) URL: 'http://[::1' is not"),
        ("homepage", "http://x.dev:99999/", "(Port out of range 0-65535)"),
        ("homepage", "https:///demo", "field homepage must be an http(s) URL with a host"),
        ("description", "Demo \ud800 tool", "field description holds a lone surrogate"),
        ("maintainer", "Demo \udcff <demo@example.com>", "field maintainer holds a lone surrogate"),
        ("depends", "libc6\ud800", "field depends holds a lone surrogate"),
        ("maintainer", "Kiro\r <support@kiro.dev>", "field maintainer must look like"),
        ("maintainer", "Evil\u2028Package: evil <a@b.c>", "field maintainer must look like"),
        ("maintainer", "Evil\x85 <a@b.c>", "field maintainer must look like"),
        ("architecture", "any", "is not the architecture of a binary package"),
        ("depends", "libc6 (>= )", "field depends: field Depends: 'libc6 (>= )'"),
        ("section", "Dev Tools", "is not a Debian section"),
        ("priority", "urgent", "field priority must be one of required, important"),
        ("description", "   ", "field description must be non-empty text"),
        ("description", 42, "field description must be non-empty text"),
        ("depends", "libc6\nlibssl3", "field depends must be one line of text"),
        ("depends", ["libc6"], "field depends must be one line of text"),
        ("additional_files", ["certificate", "manual"], "field additional_files must be a list"),
        ("additional_files", "certificate", "field additional_files must be a list"),
        ("build", "scripts/build.sh", "field build must be a mapping"),
        ("source", "external_download", "field source must be a mapping with a type"),
    ],
)
def test_field_rules(field, value, fragment):
    assert fragment in problem(**{field: value})


def test_description_with_carriage_return_is_refused():
    assert "field description:" in problem(description="Demo\rtool\nmore")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "Demo tool\n" + "more text " * 7000),
        ("depends", "libc6 (>= 2.17), " * 4000 + "libc6"),
    ],
)
def test_a_field_too_long_for_an_index_entry_is_refused(field, value):
    # It would replace the control file's in the index entry: over apt's 1 MiB, every
    # client's `apt update` would fail.
    assert f"{ORIGIN}: field {field} is " in problem(**{field: value})
    assert "apt cannot read a package entry over 1 MiB" in problem(**{field: value})


def test_a_long_description_within_the_limit_is_kept():
    text = "Demo tool\n" + "\n".join(["A line of the long description."] * 1500)
    assert parse_package_config(config_text(description=text), ORIGIN).description == text


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ({"metadata_endpoint": "https://x"}, "missing required field source.type"),
        ({"type": "ftp_mirror"}, "field source.type 'ftp_mirror' is not one of external_download"),
        ({"type": "external_download"}, "requires field source.metadata_endpoint"),
        ({"type": "build_script"}, "source.type build_script requires field source.staging_prefix"),
        ({"type": "github_release"}, "requires field source.repository"),
        ({"type": "github_release"}, "requires field source.asset_pattern"),
        (
            {"type": "external_download", "metadata_endpoint": "file:///etc/passwd"},
            "field source.metadata_endpoint must be an http(s) URL",
        ),
        (
            {"type": "external_download", "metadata_endpoint": "http://[::1/x"},
            "field source.metadata_endpoint must be an http(s) URL: 'http://[::1/x' is not a "
            "valid URL (Invalid IPv6 URL)",
        ),
        (
            {"type": "external_download", "metadata_endpoint": "http://a:99999/x"},
            "field source.metadata_endpoint must be an http(s) URL: 'http://a:99999/x' is not a "
            "valid URL (Port out of range 0-65535)",
        ),
        (
            {"type": "external_download", "metadata_endpoint": "http://a:port/x"},
            "'http://a:port/x' is not a valid URL (Port could not be cast to integer value",
        ),
        (
            {"type": "external_download", "metadata_endpoint": "http://a:0/x"},
            "'http://a:0/x' has port 0 (ports are 1-65535)",
        ),
        (
            {"type": "external_download", "metadata_endpoint": "https://u:p@a.example/x"},
            "field source.metadata_endpoint must be an http(s) URL without credentials",
        ),
        (
            {"type": "external_download", "metadata_endpoint": "https://a.example/\ud800"},
            "field source.metadata_endpoint holds a lone surrogate",
        ),
        (
            {"type": "github_release", "repository": "just-a-name", "asset_pattern": "*.deb"},
            "field source.repository must look like 'owner/name'",
        ),
        (
            {"type": "github_release", "repository": "a/b", "asset_pattern": ""},
            "field source.asset_pattern must be non-empty text",
        ),
    ],
)
def test_source_rules(source, fragment):
    assert fragment in problem(source=source)


@pytest.mark.parametrize(
    "prefix",
    ["/srv/staging/demo/", "staging/../../etc/", "../outside/", "staging/demo", "staging/a/.."],
)
def test_staging_prefix_must_stay_inside_the_staging_area(prefix):
    message = problem(source={"type": "build_script", "staging_prefix": prefix})
    assert "field source.staging_prefix must be a relative prefix ending in '/'" in message


def test_each_source_type_with_its_keys_parses():
    for source in (
        {"type": "build_script", "staging_prefix": "staging/demo/"},
        {"type": "github_release", "repository": "owner/demo", "asset_pattern": "demo_*.deb"},
    ):
        config = parse_package_config(config_text(source=source), ORIGIN)
        assert config.source.type == source["type"]


def test_all_problems_are_reported_at_once():
    message = problem(maintainer="nobody", priority="urgent", colour="blue")
    assert message.count(ORIGIN) == 3


def test_not_yaml_names_line_and_column():
    with pytest.raises(ConfigError) as caught:
        parse_package_config("package_name: demo\nsource: [unclosed\n", ORIGIN)
    assert caught.value.args[0].startswith(f"{ORIGIN}: not valid YAML at line ")


def test_a_key_written_twice_is_refused_at_any_depth():
    text = config_text() + "section: games\n"
    with pytest.raises(ConfigError) as caught:
        parse_package_config(text, ORIGIN)
    line = text.count("\n")
    assert str(caught.value) == (
        f"{ORIGIN}: not valid YAML at line {line}, column 1: the key 'section' is written twice"
    )
    nested = "package_name: demo\nsource:\n  type: build_script\n  type: github_release\n"
    with pytest.raises(ConfigError, match=r"the key 'type' is written twice"):
        parse_package_config(nested, ORIGIN)


def test_merges_of_merges_do_not_multiply_the_keys_they_repeat():
    # Each level merges the one before ten times: 10**7 copies of the first mapping's
    # keys (gigabytes, for minutes) if every repeated key were kept.
    lines = ["l0: &l0 {" + ", ".join(f"k{n}: {n}" for n in range(10)) + "}"]
    for level in range(1, 8):
        lines.append(f"l{level}: &l{level} {{<<: [{', '.join([f'*l{level - 1}'] * 10)}]}}")
    text = config_text() + "\n".join(lines) + "\nextra: {<<: *l7, k3: mine}\n"
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"unknown field\(s\): extra, l0, l1, "):
        parse_package_config(text, ORIGIN)
    assert time.monotonic() - started < 2
    data = yaml.load(text, Loader=strict_loader())  # noqa: S506 - a SafeLoader
    assert data["extra"] == {**{f"k{n}": n for n in range(10)}, "k3": "mine"}
    assert data["l2"] == data["l0"]


def test_a_key_written_twice_is_refused_also_in_a_mapping_merged_before_it_is_read():
    # `build` is read before `common`, and merging `common` into it must not hide the
    # key `common` repeats.
    repeated = "defaults:\n  common: &c\n    section: misc\n    section: devel\nbuild:\n  <<: *c\n"
    text = config_text() + repeated
    line = config_text().count("\n") + 4
    with pytest.raises(ConfigError) as caught:
        parse_package_config(text, ORIGIN)
    assert str(caught.value) == (
        f"{ORIGIN}: not valid YAML at line {line}, column 5: the key 'section' is written twice"
    )
    # A key of its own next to a merge repeats nothing, wherever the mapping is read.
    merged = "defaults:\n  base: &b {k: 0}\n  common: &c\n    <<: *b\n    k: 2\nbuild:\n  <<: *c\n"
    data = yaml.load(merged, Loader=strict_loader())  # noqa: S506 - a SafeLoader
    assert data["build"] == data["defaults"]["common"] == {"k": 2}


def test_not_a_mapping():
    with pytest.raises(ConfigError, match=r"expected a mapping of fields, found list"):
        parse_package_config("- a\n- b\n", ORIGIN)


def test_multi_line_description_becomes_a_deb822_field():
    text = config_text(description="Demo tool\nDoes things.\n\nIn two paragraphs.\n")
    config = parse_package_config(text, ORIGIN)
    assert config.description == "Demo tool\nDoes things.\n\nIn two paragraphs."
    assert config.stanza_description == "Demo tool\n Does things.\n .\n In two paragraphs."


def test_block_scalar_description():
    text = config_text(description=None) + "description: |\n  Synopsis line\n  Extended text.\n"
    config = parse_package_config(text, ORIGIN)
    assert config.stanza_description == "Synopsis line\n Extended text."


def test_description_as_field_single_line():
    assert description_as_field("  Just a synopsis  \n") == "Just a synopsis"


def write_config(directory: Path, filename: str, **changes: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(config_text(**changes), encoding="utf-8")
    return path


def test_file_name_must_match_package_name(tmp_path):
    path = write_config(tmp_path, "other.yaml")
    with pytest.raises(ConfigError) as caught:
        load_package_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert "package_name 'demo' must match the file name (demo.yaml)" in message


def test_errors_from_a_file_name_the_file(tmp_path):
    path = write_config(tmp_path, "demo.yaml", maintainer="nobody")
    with pytest.raises(ConfigError) as caught:
        load_package_config(path)
    assert str(caught.value).startswith(f"{path}: field maintainer")


def test_unreadable_package_file(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_bytes(b"package_name: d\xe9mo\n")
    with pytest.raises(ConfigError, match=r"cannot read package configuration"):
        load_package_config(path)


def test_duplicate_package_across_files(tmp_path):
    first = write_config(tmp_path, "demo.yaml")
    second = write_config(tmp_path, "demo.yml")
    with pytest.raises(ConfigError) as caught:
        load_package_configs(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{second}:")
    assert f"package demo is already defined in {first}" in message


def test_load_directory_by_package_name(tmp_path):
    write_config(tmp_path, "demo.yaml")
    write_config(tmp_path, "tool.yaml", package_name="tool")
    (tmp_path / "README.md").write_text("not a config", encoding="utf-8")
    assert sorted(load_package_configs(tmp_path)) == ["demo", "tool"]


def test_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as caught:
        load_package_configs(missing)
    message = str(caught.value)
    assert message.startswith(f"{missing}:")
    assert "DEBREPO_CONFIG_DIR" in message


@pytest.mark.parametrize("prefix", ["staging//demo/", "./staging/demo/"])
def test_staging_prefix_with_empty_or_dot_component_is_refused_at_load(prefix):
    # The staging area refuses such keys at `add` time ("not a safe object key"); the
    # configuration should be refused when it is read, naming the file and the field.
    message = problem(source={"type": "build_script", "staging_prefix": prefix})
    assert "source.staging_prefix" in message


def test_a_bad_url_in_a_file_is_one_config_error_naming_file_and_field(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(
        config_text().replace("https://example.com/demo", "http://[::1")
        + "# an IPv6 host without its closing bracket\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_package_config(path)
    assert str(caught.value) == (
        f"{path}: field homepage must be an http(s) URL: 'http://[::1' is not a valid URL "
        "(Invalid IPv6 URL)"
    )


def test_an_unknown_key_that_is_not_unicode_text_is_shown_escaped():
    text = config_text() + '"col\\udcffour": blue\n'
    with pytest.raises(ConfigError) as caught:
        parse_package_config(text, ORIGIN)
    assert str(caught.value) == f"{ORIGIN}: unknown field(s): 'col\\udcffour'"
    str(caught.value).encode("utf-8")  # printable as it is


def test_the_last_port_is_taken_and_the_next_refused():
    def endpoint(port: int) -> str:
        return f"http://[::1]:{port}/meta.json"

    last = {"type": "external_download", "metadata_endpoint": endpoint(65535)}
    assert parse_package_config(config_text(source=last), ORIGIN).source == SourceConfig(
        type="external_download", metadata_endpoint=endpoint(65535)
    )
    message = problem(source={"type": "external_download", "metadata_endpoint": endpoint(65536)})
    assert "(Port out of range 0-65535)" in message


def test_add_with_a_bad_url_in_a_definition_is_one_error_line_and_exit_2(
    tmp_path, monkeypatch, capsys
):
    from debrepo.cli import main
    from tests.conftest import deb_bytes

    for variable in [v for v in os.environ if v.startswith("DEBREPO_")]:
        monkeypatch.delenv(variable)
    config_dir = tmp_path / "packages"
    shutil.copytree(CONFIG_DIR, config_dir)
    kiro = config_dir / "kiro.yaml"
    kiro.write_text(
        kiro.read_text().replace('homepage: "https://kiro.dev"', 'homepage: "http://[::1"')
    )
    deb = tmp_path / "alpha_1.0_amd64.deb"
    deb.write_bytes(deb_bytes("alpha", "1.0"))
    home = tmp_path / "home"

    with pytest.raises(SystemExit) as exited:
        main(["--home", str(home), "--config-dir", str(config_dir), "add", str(deb)])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        f"debrepo: error: {kiro}: field homepage must be an http(s) URL: 'http://[::1' is not "
        "a valid URL (Invalid IPv6 URL)\n"
    )
    assert not home.exists()  # nothing was started
