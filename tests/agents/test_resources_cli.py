"""``emberlake get|list|create|update|delete`` against a running resource API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.resources.sqlite import SQLiteResourceStore
from emberlake.cli import cli
from tests.agents.resource_server import serving


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with serving(SQLiteResourceStore(tmp_path / "resources.db")) as base:
        yield base


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_round_trip(url: str) -> None:
    code, out = run(
        "create",
        "tenants/default/known_issues",
        "--json",
        '{"title": "disk full on db-1"}',
        "--id",
        "disk-full",
        "--url",
        url,
    )
    assert code == 0, out
    created = json.loads(out)
    assert created["name"] == "tenants/default/known_issues/disk-full"

    code, out = run("get", "tenants/default/known_issues/disk-full", "--url", url)
    assert code == 0 and json.loads(out)["title"] == "disk full on db-1"

    code, out = run(
        "update",
        "tenants/default/known_issues/disk-full",
        "--json",
        '{"state": "FIXED", "title": "ignored"}',
        "--update-mask",
        "state",
        "--url",
        url,
    )
    assert code == 0 and json.loads(out)["state"] == "FIXED"
    assert json.loads(out)["title"] == "disk full on db-1"

    code, out = run(
        "update",
        "tenants/default/known_issues/disk-full",
        "--json",
        "{}",
        "--etag",
        created["etag"],
        "--url",
        url,
    )
    assert code == 1 and "changed" in out

    code, out = run(
        "list",
        "tenants/default/known_issues",
        "--filter",
        'state = "FIXED"',
        "--order-by",
        "create_time desc",
        "--url",
        url,
    )
    assert code == 0 and "tenants/default/known_issues/disk-full  FIXED  disk full" in out
    code, out = run("list", "tenants/default/known_issues", "--json", "--all", "--url", url)
    assert code == 0 and json.loads(out)["total_size"] == 1

    code, out = run("delete", "tenants/default/known_issues/disk-full", "--url", url)
    assert code == 0 and "deleted" in out
    code, out = run("get", "tenants/default/known_issues/disk-full", "--url", url)
    assert code == 1 and "does not exist" in out


def test_cli_errors_say_what_was_wrong(url: str) -> None:
    code, out = run("get", "tenants/default/nonsense/x", "--url", url)
    assert code == 1 and "no collection 'nonsense'" in out
    code, out = run("create", "tenants/default/known_issues", "--json", "[1]", "--url", url)
    assert code == 1 and "JSON object" in out
    code, out = run("list", "tenants/default/known_issues", "--url", "http://127.0.0.1:9")
    assert code == 1 and "cannot reach the resource API" in out
