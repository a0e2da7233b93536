"""settings.py: flag > environment > file > default, and errors that name their source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from debrepo.errors import ConfigError
from debrepo.settings import ENVIRONMENT, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented_environment() -> dict[str, str]:
    """Setting -> environment variable, as the README's settings table gives them: the
    names users were told, which a rename in the code must not change unnoticed."""
    documented: dict[str, str] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[2].startswith("`DEBREPO_"):
            continue
        settings = re.findall(r"`([a-z0-9_]+)`", cells[0].split("(")[0])  # not the notes
        variables = re.findall(r"`([A-Z0-9_]+)`", cells[2])
        documented.update(zip(settings, variables, strict=True))
    return documented


DOCUMENTED = _documented_environment()


def test_the_readme_documents_every_setting_s_environment_variable():
    assert DOCUMENTED["origin"] == "DEBREPO_ORIGIN"  # the table was read at all
    assert {**DOCUMENTED, "settings_file": "DEBREPO_SETTINGS"} == ENVIRONMENT


def write_settings(directory: Path, values: dict[str, object], name: str = "debrepo.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


# Each kind of value: (name, (flag, environment, file) raw values, the same values as read back)
KINDS = [
    (
        "origin",
        ("FlagOrigin", "EnvOrigin", "FileOrigin"),
        ("FlagOrigin", "EnvOrigin", "FileOrigin"),
    ),
    ("valid_days", ("2.5", "3", 4), (2.5, 3.0, 4.0)),
    ("by_hash_keep", ("5", "6", 7), (5, 6, 7)),
    (
        "architectures",
        ("arm64", "i386,riscv64", ["armhf", "s390x"]),
        (("arm64",), ("i386", "riscv64"), ("armhf", "s390x")),
    ),
    (
        "public_url",
        ("https://flag.example", "https://env.example", "https://file.example"),
        ("https://flag.example", "https://env.example", "https://file.example"),
    ),
]


@pytest.mark.parametrize(("name", "raw", "read"), KINDS, ids=[k[0] for k in KINDS])
def test_precedence_flag_over_environment_over_file_over_default(tmp_path, name, raw, read):
    flag, env, file = raw
    write_settings(tmp_path, {name: file})
    environ = {DOCUMENTED[name]: env}

    def value(flags, environ):
        return getattr(load_settings(flags, environ=environ, cwd=tmp_path), name)

    assert value({name: flag}, environ) == read[0]
    assert value({}, environ) == read[1]
    assert value({}, {}) == read[2]
    (tmp_path / "debrepo.yaml").unlink()
    assert value({}, {}) not in read


def test_defaults_without_any_configuration(tmp_path):
    settings = load_settings({}, environ={}, cwd=tmp_path)
    home = tmp_path / ".debrepo"
    assert settings.home == home
    assert settings.store == f"sqlite://{home / 'metadata.db'}"
    assert settings.repo == f"file://{home / 'repo'}"
    assert settings.key_file == home / "keys" / "signing-key.asc"
    assert settings.config_dir == tmp_path / "config" / "packages"
    assert (settings.suite, settings.codename, settings.components) == (
        "stable",
        "stable",
        ("main",),
    )
    assert settings.architectures == ("amd64",)
    assert settings.component == "main"
    assert settings.keyring_name == "kiro-archive-keyring"


def test_path_values_follow_the_same_precedence(tmp_path):
    write_settings(tmp_path, {"home": "from-file", "key_file": "file.asc"})
    from_file = load_settings({}, environ={}, cwd=tmp_path)
    assert from_file.home == tmp_path / "from-file"
    assert from_file.key_file == tmp_path / "file.asc"
    assert from_file.store.endswith(str(tmp_path / "from-file" / "metadata.db"))

    environ = {"DEBREPO_HOME": "from-env", "DEBREPO_KEY_FILE": "env.asc"}
    from_env = load_settings({}, environ=environ, cwd=tmp_path)
    assert (from_env.home, from_env.key_file) == (tmp_path / "from-env", tmp_path / "env.asc")

    flags = {"home": "from-flag", "key_file": "flag.asc"}
    from_flag = load_settings(flags, environ=environ, cwd=tmp_path)
    assert (from_flag.home, from_flag.key_file) == (tmp_path / "from-flag", tmp_path / "flag.asc")


def test_relative_paths_in_a_settings_file_are_taken_from_its_folder(tmp_path):
    conf, elsewhere = tmp_path / "srv" / "kiro", tmp_path / "elsewhere"
    (conf / "defs").mkdir(parents=True)
    elsewhere.mkdir()
    values = {
        "home": "data",
        "key_file": "keys/k.asc",
        "config_dir": "defs",
        "store": "sqlite://db/m.db",
        "repo": "public",
        "staging": "file://stage",
    }
    write_settings(conf, values)
    environ = {"DEBREPO_SETTINGS": str(conf / "debrepo.yaml")}
    settings = load_settings({}, environ=environ, cwd=elsewhere)
    assert settings.home == conf / "data"
    assert settings.key_file == conf / "keys" / "k.asc"
    assert settings.config_dir == conf / "defs"
    assert settings.store == f"sqlite://{conf / 'db' / 'm.db'}"
    assert settings.repo == str(conf / "public")
    assert settings.staging == f"file://{conf / 'stage'}"
    # Run from the file's folder, where it is found without being named: the same.
    assert load_settings({}, environ={}, cwd=conf) == settings
    # A flag or a variable is taken from where the command runs.
    flags = {"home": "h", "store": "sqlite://s.db", "repo": "file://r"}
    from_flags = load_settings(flags, environ=environ, cwd=elsewhere)
    assert from_flags.home == elsewhere / "h"
    assert (from_flags.store, from_flags.repo) == ("sqlite://s.db", "file://r")
    assert load_settings({}, environ={**environ, "DEBREPO_HOME": "e"}, cwd=elsewhere).home == (
        elsewhere / "e"
    )
    # Absolute paths and remote URLs are left as written.
    write_settings(conf, {"store": "dynamodb://t", "repo": "s3://b/p", "home": str(tmp_path)})
    remote = load_settings({}, environ=environ, cwd=elsewhere)
    assert (remote.store, remote.repo, remote.home) == ("dynamodb://t", "s3://b/p", tmp_path)


def test_empty_environment_variable_and_none_flag_are_ignored(tmp_path):
    settings = load_settings(
        {"origin": None, "components": ()}, environ={"DEBREPO_ORIGIN": ""}, cwd=tmp_path
    )
    assert settings.origin == "Kiro"
    assert settings.components == ("main",)


def test_settings_file_named_by_environment_variable(tmp_path):
    (tmp_path / "conf").mkdir()
    write_settings(tmp_path / "conf", {"label": "Elsewhere"}, name="custom.yaml")
    write_settings(tmp_path, {"label": "Default file"})
    environ = {"DEBREPO_SETTINGS": "conf/custom.yaml"}
    assert load_settings({}, environ=environ, cwd=tmp_path).label == "Elsewhere"
    assert load_settings({}, environ={}, cwd=tmp_path).label == "Default file"
    flags = {"settings_file": "debrepo.yaml"}
    assert load_settings(flags, environ=environ, cwd=tmp_path).label == "Default file"


def test_settings_environment_variable_naming_a_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={"DEBREPO_SETTINGS": "absent.yaml"}, cwd=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "absent.yaml") in message
    assert "DEBREPO_SETTINGS" in message
    assert "not found" in message


def test_settings_option_naming_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"settings file not found \(option --settings\)$"):
        load_settings({"settings_file": "absent.yaml"}, environ={}, cwd=tmp_path)


def test_unknown_keys_in_settings_file_are_listed(tmp_path):
    path = write_settings(tmp_path, {"origin": "ok", "orgin": "typo", "colour": "blue"})
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, cwd=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert "colour, orgin" in message
    assert "origin," not in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("origin: [unclosed\n", "not valid YAML at line"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_malformed_settings_file(tmp_path, content, fragment):
    path = tmp_path / "debrepo.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, cwd=tmp_path)
    assert str(path) in str(caught.value)
    assert fragment in str(caught.value)


def test_empty_settings_file_means_defaults(tmp_path):
    (tmp_path / "debrepo.yaml").write_text("# nothing set\n", encoding="utf-8")
    assert load_settings({}, environ={}, cwd=tmp_path).origin == "Kiro"


def test_settings_path_that_is_a_directory(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_settings({"settings_file": "dir.yaml"}, environ={}, cwd=tmp_path)
    assert f"{tmp_path / 'dir.yaml'}: settings file is not a file (option --settings)" == str(
        caught.value
    )


@pytest.mark.parametrize(
    ("flags", "environ", "source"),
    [
        ({"home": "notes.txt"}, {}, "option --home"),
        ({}, {"DEBREPO_HOME": "notes.txt"}, "environment variable DEBREPO_HOME"),
    ],
)
def test_a_home_that_is_a_file_is_a_config_error(tmp_path, flags, environ, source):
    (tmp_path / "notes.txt").write_text("not a home\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, environ=environ, cwd=tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'notes.txt'}: not a folder ({source} must name the home folder)"
    )
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "not a home\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"home": ""}, "option --home must be the path of a folder, not ''"),
        ({"home": "a\0b"}, "option --home must be the path of a folder, not 'a\\x00b'"),
        ({"key_file": "k\0"}, "option --key-file holds a NUL character"),
        ({"public_url": "http://[::1"}, "option --public-url: 'http://[::1' is not an http(s) URL"),
        ({"public_url": "http://h:port"}, "'http://h:port' is not an http(s) URL"),
        ({"public_url": "http://x y"}, "'http://x y' is not an http(s) URL"),
    ],
    ids=["empty-home", "nul-home", "nul-key-file", "bad-ipv6", "bad-port", "space"],
)
def test_settings_that_are_no_path_or_url_are_config_errors(tmp_path, flags, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, environ={}, cwd=tmp_path)
    assert message in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing was created in the current folder


def test_a_home_that_is_not_text_in_the_settings_file_is_a_config_error(tmp_path):
    (tmp_path / "debrepo.yaml").write_text("home: [a, b]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, cwd=tmp_path)
    assert f"{tmp_path / 'debrepo.yaml'}: home must be the path of a folder" in str(caught.value)


def test_a_setting_written_twice_is_a_config_error(tmp_path):
    (tmp_path / "debrepo.yaml").write_text("origin: Acme\norigin: Other\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, cwd=tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'debrepo.yaml'}: not valid YAML at line 2: the key 'origin' is written twice"
    )


def test_a_list_as_a_key_is_a_config_error_not_a_traceback(tmp_path):
    (tmp_path / "debrepo.yaml").write_text("? [a, b]\n: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"debrepo.yaml: not valid YAML at line 1"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_settings_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "debrepo.yaml"
    path.write_bytes(b"origin: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, cwd=tmp_path)
    assert str(path) in str(caught.value)


def test_null_in_settings_file_falls_back_to_default(tmp_path):
    write_settings(tmp_path, {"origin": None})
    assert load_settings({}, environ={}, cwd=tmp_path).origin == "Kiro"


def test_settings_file_values_are_the_text_written(tmp_path):
    # Plain YAML reads 1.10 as the number 1.1 and 010 as 8.
    (tmp_path / "debrepo.yaml").write_text(
        "release_version: 1.10\ncodename: 010\nvalid_days: 7\nlabel:\n", encoding="utf-8"
    )
    settings = load_settings({}, environ={}, cwd=tmp_path)
    assert settings.release_version == "1.10"
    assert settings.codename == "010"
    assert settings.valid_days == 7.0
    assert settings.label == "Kiro"  # left empty: the default


def test_settings_file_may_merge_a_mapping(tmp_path):
    (tmp_path / "debrepo.yaml").write_text(
        "<<: &site {origin: Example, valid_days: 3}\nlabel: Example APT\n", encoding="utf-8"
    )
    settings = load_settings({}, environ={}, cwd=tmp_path)
    assert (settings.origin, settings.label, settings.valid_days) == ("Example", "Example APT", 3.0)


BAD_VALUES = [
    ("valid_days", "soon", "must be a number of days"),
    ("valid_days", "0", "must be between 1/24 (an hour) and 3650 days"),
    ("valid_days", "1e-9", "must be between 1/24 (an hour) and 3650 days"),
    ("valid_days", "4000", "must be between 1/24 (an hour) and 3650 days"),
    ("by_hash_keep", "2.5", "must be a whole number"),
    ("by_hash_keep", "2", "must keep at least 3 generations"),
    ("public_url", "ftp://example.com", "is not an http(s) URL"),
    ("public_url", "http://", "is not an http(s) URL"),
    ("key_name", "Kiro Keys", "is not a valid keyring name"),
    ("suite", "stable/updates", "is not a valid suite name"),
    ("codename", "-bad", "is not a valid codename name"),
    ("components", "Main", "components must be names such as 'main'"),
    ("architectures", "all", "'all' is not a binary architecture"),
    ("architectures", "AMD64", "'AMD64' is not a binary architecture (such as amd64, arm64;"),
    ("architectures", "amd64,any", "'any' is not a binary architecture (such as amd64, arm64;"),
    ("architectures", " , ", "list at least one architecture"),
    ("origin", "two\nlines", "must be a single line"),
    ("origin", "Ki\rro", "must be a single line without control characters"),
    ("release_version", "1.0\x00", "without control characters"),
    ("origin", "K\x85Evil", "without control characters"),
    ("release_version", "1.0\u2028Codename: evil", "without control characters"),
    ("components", "main,main", "main listed twice"),
    ("architectures", "amd64,arm64,amd64", "amd64 listed twice"),
    ("label", "   ", "must be non-empty text"),
]


def _sources(tmp_path: Path, name: str, value: str) -> list[tuple[dict, dict, str]]:
    return [
        ({name: value}, {}, f"option --{name.replace('_', '-')}"),
        ({}, {DOCUMENTED[name]: value}, f"environment variable {DOCUMENTED[name]}"),
        ({}, {}, f"{tmp_path / 'debrepo.yaml'}: {name}"),
    ]


@pytest.mark.parametrize(("name", "value", "reason"), BAD_VALUES)
def test_every_validation_error_names_its_source(tmp_path, name, value, reason):
    write_settings(tmp_path, {name: value})
    for flags, environ, where in _sources(tmp_path, name, value):
        with pytest.raises(ConfigError) as caught:
            load_settings(flags, environ=environ, cwd=tmp_path)
        message = str(caught.value)
        assert where in message, (where, message)
        assert reason in message, (reason, message)
        assert "\n" not in message.replace(repr(value), "")


def test_file_value_of_wrong_type_names_the_key(tmp_path):
    path = write_settings(tmp_path, {"origin": {"nested": "mapping"}})
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, cwd=tmp_path)
    assert f"{path}: origin must be non-empty text" in str(caught.value)


@pytest.mark.parametrize("name", ["components", "architectures"])
def test_a_list_given_as_a_mapping_names_the_key(tmp_path, name):
    path = write_settings(tmp_path, {name: {"amd64": 1}})
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, cwd=tmp_path)
    assert str(caught.value).startswith(
        f"{path}: {name} must be a list of names or a text of names separated by spaces "
        "or commas, not "
    )


def test_lists_from_file_and_text(tmp_path):
    write_settings(tmp_path, {"components": ["main", "contrib"], "architectures": "amd64 arm64"})
    settings = load_settings({}, environ={}, cwd=tmp_path)
    assert settings.components == ("main", "contrib")
    assert settings.component == "main"
    assert settings.architectures == ("amd64", "arm64")


def test_public_url_trailing_slash_removed(tmp_path):
    settings = load_settings({"public_url": "https://apt.example.com/"}, environ={}, cwd=tmp_path)
    assert settings.public_url == "https://apt.example.com"


def test_every_setting_has_one_environment_variable():
    assert all(variable.startswith("DEBREPO_") for variable in ENVIRONMENT.values())
    assert len(set(ENVIRONMENT.values())) == len(ENVIRONMENT)


@pytest.mark.parametrize(
    ("repo", "environ", "url"),
    [
        ("s3://bkt", {"AWS_REGION": "eu-west-1"}, "https://bkt.s3.eu-west-1.amazonaws.com"),
        (
            "s3://bkt/apt/",
            {"AWS_DEFAULT_REGION": "us-east-2"},
            "https://bkt.s3.us-east-2.amazonaws.com/apt",
        ),
        ("s3://bkt", {}, "https://bkt.s3.amazonaws.com"),
        (
            "s3://apt.example.com",
            {"AWS_REGION": "eu-west-1"},
            "https://s3.eu-west-1.amazonaws.com/apt.example.com",
        ),
        ("file:///srv/apt", {"AWS_REGION": "eu-west-1"}, "http://127.0.0.1:8080"),
    ],
)
def test_the_default_public_url_of_a_bucket_is_the_bucket_not_loopback(
    tmp_path, repo, environ, url
):
    # A kiro-repo built for an S3 repository without --repo-url would otherwise point
    # every client's APT source at 127.0.0.1, for good (versions are immutable).
    assert load_settings({"repo": repo}, environ=environ, cwd=tmp_path).public_url == url
    chosen = {"repo": repo, "public_url": "https://apt.example.com"}
    assert load_settings(chosen, environ=environ, cwd=tmp_path).public_url == (
        "https://apt.example.com"
    )


@pytest.mark.parametrize(
    ("flags", "published"),
    [
        ({"repo": "file://{home}"}, "the signing key (key_file)"),
        ({"repo": "file://{home}", "key_secret_id": "arn:secret"}, "the metadata store (store)"),
        ({"repo": "{tmp}/public", "key_file": "{tmp}/public/keys/k.asc"}, "the signing key"),
        ({"repo": "{tmp}/public", "store": "sqlite://{tmp}/public/db/m.db"}, "the metadata store"),
        ({"staging": "file://{home}/repo"}, "the staging area (staging)"),
    ],
)
def test_a_repository_folder_that_would_publish_private_files_is_refused(
    tmp_path, flags, published
):
    home = tmp_path / "home"
    given = {k: v.format(home=home, tmp=tmp_path) for k, v in flags.items()}
    with pytest.raises(ConfigError) as caught:
        load_settings({"home": str(home), **given}, environ={}, cwd=tmp_path)
    assert published in str(caught.value)
    assert "would be published" in str(caught.value)
    culprit = next((name for name in ("key_file", "store", "staging") if name in flags), None)
    if culprit is not None:  # the setting that put it there is named, not only --repo
        assert f"(option --{culprit.replace('_', '-')})" in str(caught.value)


def test_a_repository_inside_the_staging_area_is_refused(tmp_path):
    home = tmp_path / "home"
    flags = {"home": str(home), "repo": f"file://{home}/staging/public"}
    with pytest.raises(ConfigError, match=r"is inside the staging area .*home/staging \(default"):
        load_settings(flags, environ={}, cwd=tmp_path)


@pytest.mark.parametrize("prefix", ["staging", "staging/apt", "ops/staging"])
def test_an_s3_repository_under_the_staging_prefix_is_refused(tmp_path, prefix):
    staging = "s3://bucket/ops" if prefix.startswith("ops/") else "s3://bucket"
    flags = {"home": str(tmp_path), "repo": f"s3://bucket/{prefix}", "staging": staging}
    with pytest.raises(ConfigError, match=r"inside the private staging area"):
        load_settings(flags, environ={}, cwd=tmp_path)
    elsewhere = {**flags, "repo": "s3://bucket/apt-staging"}
    assert load_settings(elsewhere, environ={}, cwd=tmp_path).repo == "s3://bucket/apt-staging"


@pytest.mark.parametrize(
    ("repo", "staging"),
    [("s3://bucket", "s3://bucket/pool"), ("s3://bucket/apt", "s3://bucket/apt/dists/x")],
)
def test_an_s3_staging_area_under_the_public_folders_is_refused(tmp_path, repo, staging):
    flags = {"home": str(tmp_path), "repo": repo, "staging": staging}
    with pytest.raises(ConfigError, match=r"inside the repository's public s3://bucket/"):
        load_settings(flags, environ={}, cwd=tmp_path)
    beside = {**flags, "staging": "s3://bucket/apt"}  # apt/staging/: no client may read it
    assert load_settings(beside, environ={}, cwd=tmp_path).staging == "s3://bucket/apt"


@pytest.mark.parametrize("name", ["repo", "staging", "store"])
def test_a_url_without_a_path_is_refused(tmp_path, name):
    scheme = "sqlite" if name == "store" else "file"
    with pytest.raises(ConfigError, match=rf"'{scheme}://' names no path"):
        load_settings({"home": str(tmp_path), name: f"{scheme}://"}, environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        *("origin", "label", "description", "release_version", "key_user_id", "public_url"),
        *("key_secret_id", "sns_topic_arn", "cloudfront_distribution_id"),
    ],
)
def test_bytes_that_are_not_utf8_are_a_setting_error(tmp_path, name):
    """A shell passes such bytes as lone surrogates, which no Release, page or request
    can carry: refused up front, not a traceback when the file is written."""
    value = "http://a\udc85b" if name == "public_url" else "a\udc85b"
    for flags, environ, where in _sources(tmp_path, name, value)[:2]:
        with pytest.raises(ConfigError, match="is not UTF-8 text") as caught:
            load_settings(flags, environ=environ, cwd=tmp_path)
        assert where in str(caught.value)


def test_a_deleted_current_folder_is_a_config_error(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(ConfigError, match="cannot tell the current folder"):
        load_settings({"home": str(tmp_path / "home")}, environ={})
