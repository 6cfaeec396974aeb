"""The one settings object: defaults, file, environment, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from emberlake.errors import ConfigError
from emberlake.settings import Settings, load_settings, parse_pairs, to_env


def test_defaults_without_file_or_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.embedded_broker
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.catalog_uri == f"sqlite:///{tmp_path / 'emberlake-data' / 'catalog.db'}"
    assert settings.warehouse == (tmp_path / "emberlake-data" / "warehouse").as_uri()


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = tmp_path / "emberlake.toml"
    config.write_text('data_dir = "/srv/lake"\n[kafka]\npartitions = 8\n[queryd]\nport = 9000\n')
    settings = load_settings(
        environ={
            "EMBERLAKE_CONFIG": str(config),
            "EMBERLAKE_QUERYD_PORT": "9100",
            "EMBERLAKE_KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "EMBERLAKE_LAKE_BATCH_MAX_SECONDS": "0.5",
        }
    )
    assert settings.data_dir == "/srv/lake"
    assert settings.kafka.partitions == 8
    assert settings.queryd.port == 9100
    assert settings.lake.batch_max_seconds == 0.5
    assert not settings.embedded_broker
    assert settings.bootstrap_servers == "k1:9092,k2:9092"


def test_to_env_round_trips() -> None:
    original = Settings(data_dir="/data").replace(log_level="DEBUG")
    assert load_settings(environ=to_env(original)) == original


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EMBERLAKE_QUERYD_PORT": "eighty"}, "settings.queryd.port: expected int"),
        ({"EMBERLAKE_QUERYD_NOPE": "1"}, "unknown setting"),
        ({"EMBERLAKE_WHATEVER": "1"}, "unknown environment setting EMBERLAKE_WHATEVER"),
        ({"EMBERLAKE_CONFIG": "/nonexistent/emberlake.toml"}, "does not exist"),
    ],
)
def test_bad_settings_say_what_is_wrong(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={}, config_file=config)


def test_parse_pairs() -> None:
    assert parse_pairs(" a=1, b = x=y ,") == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_pairs("novalue")
