"""The Docker deployment speaks the settings' language: every ``EMBERLAKE_*`` variable the
compose file sets is a real setting that loads, and the image holds every package."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from emberlake.settings import Settings, load_settings, parse_pairs

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return doc


def _resolve(value: object) -> str:
    """``${VAR:-default}`` as compose fills it in when VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def _emberlake_services() -> dict[str, dict[str, str]]:
    services = _compose()["services"]
    out = {}
    for name, service in services.items():
        image = service.get("image", "")
        if image.startswith("emberlake"):
            env = {k: _resolve(v) for k, v in (service.get("environment") or {}).items()}
            out[name] = env
    return out


@pytest.mark.parametrize("service", sorted(_emberlake_services()))
def test_compose_environment_loads_as_settings(service: str) -> None:
    env = _emberlake_services()[service]
    settings: Settings = load_settings(environ=env, config_file=None)
    assert not settings.embedded_broker, "a deployment must not start the embedded broker"
    assert settings.lake.catalog_uri.startswith("postgresql")
    assert settings.warehouse.startswith("s3://")
    properties = parse_pairs(settings.lake.catalog_properties)
    assert {"s3.endpoint", "s3.access-key-id", "s3.secret-access-key"} <= set(properties)
    if settings.agents.sessions_url.startswith("s3://"):
        from agents.sessions.s3_store import _OPTION_NAMES

        options = parse_pairs(settings.agents.sessions_options)
        assert options.get("endpoint_url"), "an s3 session store needs the MinIO endpoint"
        assert set(options) <= _OPTION_NAMES


def test_commands_are_emberlake_subcommands() -> None:
    from emberlake.cli import COMMANDS

    for name, service in _compose()["services"].items():
        if not str(service.get("image", "")).startswith("emberlake"):
            continue
        command = service.get("command") or service.get("entrypoint")[1:]
        assert command[0] in COMMANDS, (name, command)


def test_image_holds_every_package_and_a_writable_data_folder() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for package in ("emberlake", "ingest", "lake", "queryd", "agents"):
        assert f"COPY {package} {package}" in dockerfile
    assert "boto3" in dockerfile  # the agents' S3 session store
    data = _compose()["x-emberlake"]["environment"]["EMBERLAKE_DATA_DIR"]
    user = re.search(r"^USER (\S+)", dockerfile, re.M)
    assert user is not None
    assert f"chown {user.group(1)} {data}" in dockerfile
