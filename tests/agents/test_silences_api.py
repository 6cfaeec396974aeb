"""Silences over real HTTP: the standard methods, their rules, names, and the CLI listing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.resources.client import ResourceClient
from agents.resources.sqlite import SQLiteResourceStore
from agents.silences import check_silence
from emberlake.cli import cli
from emberlake.errors import EtagMismatch, InvalidArgument, NotFound, TenantError
from tests.agents.resource_server import serving

SILENCES = "tenants/default/silences"
START, END = "2026-11-22T10:00:00Z", "2026-11-22T10:30:00Z"


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with serving(SQLiteResourceStore(tmp_path / "resources.db")) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> ResourceClient:
    return ResourceClient(base_url)


def post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), method="POST", headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_create_get_list_update_delete(client: ResourceClient) -> None:
    deploy = client.create(
        SILENCES,
        {
            "service": "checkout",
            "kinds": ["request_rate", "error_rate"],
            "start_time": "2026-11-22T11:00:00+01:00",
            "end_time": END,
            "reason": "deploy 1.9.0",
            "created_by": "ana",
        },
        "deploy-190",
    )
    assert deploy["name"] == f"{SILENCES}/deploy-190"
    # Times are normalised to UTC text, so filters compare them correctly; kinds are sorted.
    assert deploy["start_time"] == "2026-11-22T10:00:00.000000Z"
    assert deploy["end_time"] == "2026-11-22T10:30:00.000000Z"
    assert deploy["kinds"] == ["error_rate", "request_rate"]
    assert client.get(deploy["name"]) == deploy

    everything = client.create(SILENCES, {"service": "", "start_time": START, "end_time": END})
    assert everything["service"] == "*" and everything["kinds"] == []

    page = client.list(SILENCES, filter='service = "checkout" AND kinds:"request_rate"')
    assert [s["name"] for s in page["silences"]] == [deploy["name"]]
    page = client.list(SILENCES, filter='end_time > "2026-11-22T10:15:00Z"', order_by="service")
    assert [s["service"] for s in page["silences"]] == ["*", "checkout"]

    longer = client.update(
        deploy["name"],
        {"end_time": "2026-11-22T11:00:00Z", "reason": "ignored", "etag": deploy["etag"]},
        ["end_time"],
    )
    assert longer["end_time"] == "2026-11-22T11:00:00.000000Z"
    assert longer["reason"] == "deploy 1.9.0" and longer["etag"] != deploy["etag"]
    with pytest.raises(EtagMismatch):
        client.update(deploy["name"], {"reason": "x", "etag": deploy["etag"]}, ["reason"])
    # The rules hold on Update too: the result of the mask is checked.
    with pytest.raises(InvalidArgument, match="must be after start_time"):
        client.update(deploy["name"], {"end_time": "2026-11-22T09:00:00Z"}, ["end_time"])
    with pytest.raises(InvalidArgument, match="cannot be cleared"):
        client.update(deploy["name"], {}, ["end_time"])

    with pytest.raises(EtagMismatch):
        client.delete(deploy["name"], etag=deploy["etag"])
    client.delete(deploy["name"], etag=longer["etag"])
    with pytest.raises(NotFound):
        client.get(deploy["name"])
    assert client.list(SILENCES)["total_size"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"service": "checkout", "start_time": END, "end_time": START}, "must be after start_time"),
        ({"service": "checkout", "start_time": START, "end_time": START}, "must be after"),
        ({"service": "checkout", "start_time": START}, "end_time is required"),
        ({"start_time": START, "end_time": END}, "service is required"),
        (
            {"service": "a", "start_time": START, "end_time": "2026-12-22T10:00:00Z"},
            "at most 7 days",
        ),
        ({"service": "a", "end_time": "next tuesday"}, "RFC 3339"),
        ({"service": "a", "start_time": "2026-11-22T10:00:00", "end_time": END}, "time zone"),
        ({"service": "a", "kinds": ["cpu"], "start_time": START, "end_time": END}, "'cpu'"),
        ({"service": "a", "kinds": "request_rate", "end_time": END}, "must be a list"),
    ],
)
def test_bad_silences_are_rejected(base_url: str, body: dict, message: str) -> None:
    code, answer = post(f"{base_url}/v1/{SILENCES}", body)
    assert code == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert message in answer["error"]["message"]


def test_bad_names(client: ResourceClient) -> None:
    body = {"service": "a", "start_time": START, "end_time": END}
    for name in ("tenants/default/silence", "tenants/default/silences/x/findings"):
        with pytest.raises(InvalidArgument):
            client.list(name)
    with pytest.raises(InvalidArgument, match="invalid resource id"):
        client.create(SILENCES, body, "Not_An_Id")
    with pytest.raises(InvalidArgument, match="POST goes to a collection"):
        client.create(f"{SILENCES}/x", body)
    with pytest.raises(TenantError):
        client.list("tenants/other/silences")


def test_a_missing_start_is_the_time_of_creation() -> None:
    now = "2026-11-22T10:00:00.000000Z"
    checked = check_silence({"service": "a", "end_time": "2026-11-22T10:05:00Z"}, now)
    assert checked["start_time"] == now and checked["kinds"] == []
    with pytest.raises(InvalidArgument, match="must be after"):
        check_silence({"service": "a", "end_time": "2026-11-22T09:00:00Z"}, now)


def test_the_cli_creates_and_lists_silences(base_url: str) -> None:
    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, [*args, "--url", base_url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    body = {"service": "*", "start_time": START, "end_time": END, "reason": "demo stopped"}
    created = json.loads(run("create", SILENCES, "--json", json.dumps(body), "--id", "demo"))
    assert created["name"] == f"{SILENCES}/demo"
    listed = run("list", SILENCES)
    assert f"{SILENCES}/demo" in listed and "demo stopped" in listed and "all kinds" in listed
