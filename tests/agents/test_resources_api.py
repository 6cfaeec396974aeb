"""The resource API over real HTTP: every standard method, paging, filters, masks, etags, names."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.resources.client import ResourceClient
from agents.resources.sqlite import SQLiteResourceStore
from emberlake.errors import (
    AlreadyExists,
    EtagMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TenantError,
    Unauthenticated,
)
from emberlake.tenancy import Authenticator
from tests.agents.resource_server import serving

INV = "tenants/default/investigations"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteResourceStore:
    return SQLiteResourceStore(tmp_path / "resources.db")


@pytest.fixture
def base_url(store: SQLiteResourceStore) -> Iterator[str]:
    with serving(store) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> ResourceClient:
    return ResourceClient(base_url)


def raw(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_create_get_update_delete_round_trip(client: ResourceClient) -> None:
    created = client.create(INV, {"title": "checkout errors", "service": "checkout"})
    name = created["name"]
    assert name.startswith(INV + "/") and created["state"] == "OPEN"
    assert created["anomaly_count"] == 0 and created["etag"]
    assert created["create_time"] == created["update_time"] and created["create_time"].endswith("Z")
    assert client.get(name) == created

    updated = client.update(
        name, {"state": "INVESTIGATING", "title": "ignored"}, update_mask=["state"]
    )
    assert updated["state"] == "INVESTIGATING" and updated["title"] == "checkout errors"
    assert updated["etag"] != created["etag"] and updated["update_time"] >= created["update_time"]
    assert updated["create_time"] == created["create_time"]

    client.delete(name, etag=updated["etag"])
    with pytest.raises(NotFound):
        client.get(name)


def test_create_with_chosen_id_and_conflicts(client: ResourceClient) -> None:
    ki = client.create("tenants/default/known_issues", {"title": "slow db"}, "slow-db")
    assert ki["name"] == "tenants/default/known_issues/slow-db" and ki["state"] == "ACTIVE"
    with pytest.raises(AlreadyExists):
        client.create("tenants/default/known_issues", {"title": "again"}, "slow-db")
    with pytest.raises(InvalidArgument, match="invalid resource id"):
        client.create("tenants/default/known_issues", {"title": "x"}, "Bad_Id")
    with pytest.raises(InvalidArgument, match="required"):
        client.create("tenants/default/known_issues", {"description": "no title"})
    with pytest.raises(InvalidArgument, match="must be one of"):
        client.create(INV, {"title": "x", "state": "SLEEPING"})
    with pytest.raises(InvalidArgument, match="must be a integer"):
        client.create(INV, {"title": "x", "anomaly_count": "many"})


def test_server_owned_fields_are_ignored_on_create(client: ResourceClient) -> None:
    created = client.create(
        INV,
        {
            "title": "t",
            "name": "tenants/default/investigations/zzz",
            "etag": "forged",
            "create_time": "1999-01-01T00:00:00Z",
        },
    )
    assert created["name"] != "tenants/default/investigations/zzz"
    assert created["etag"] != "forged" and not created["create_time"].startswith("1999")


@pytest.mark.parametrize(
    "path",
    [
        "tenants/Default/investigations/abc",  # tenant must be lower-case
        "tenants/default/widgets/abc",  # no such collection
        "tenants/default/investigations/abc/widgets",  # nothing nests there
        "tenants/default/findings/abc",  # findings live under an investigation
        "tenants/default/investigations/-abc",  # bad id
        "tenants/default/investigations/a/b/c/d/e",
    ],
)
def test_bad_names_are_invalid_argument(base_url: str, path: str) -> None:
    status, body = raw("GET", f"{base_url}/v1/{path}")
    assert status == 400, body
    assert body["error"]["status"] == "INVALID_ARGUMENT" and body["error"]["code"] == 400
    assert body["error"]["message"]


def test_errors_have_the_aip_shape(base_url: str) -> None:
    status, body = raw("GET", f"{base_url}/v1/{INV}/nope")
    assert (status, body["error"]["status"]) == (404, "NOT_FOUND")
    status, body = raw("POST", f"{base_url}/v1/{INV}/nope", {"title": "x"})
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    req = urllib.request.Request(
        f"{base_url}/v1/{INV}",
        data=b"{not json",
        method="POST",
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 400


def test_list_pages_are_complete_stable_and_bound_to_their_request(client: ResourceClient) -> None:
    for i in range(25):
        client.create(INV, {"title": f"inv {i:02d}", "anomaly_count": i % 5}, f"inv-{i:02d}")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = client.list(INV, order_by="title desc", page_size=10, page_token=token)
        assert page["total_size"] == (25 if pages == 0 else 26)
        seen += [r["title"] for r in page["investigations"]]
        token = page["next_page_token"]
        pages += 1
        if pages == 1:
            # A resource created mid-listing before the cursor is not seen twice or shifted in.
            client.create(INV, {"title": "inv 99"}, "inv-99")
        if not token:
            break
    assert pages == 3
    assert seen == [f"inv {i:02d}" for i in range(24, -1, -1)]
    first = client.list(INV, page_size=5)
    with pytest.raises(InvalidArgument, match="page_token"):
        client.list(INV, filter='state = "OPEN"', page_size=5, page_token=first["next_page_token"])
    with pytest.raises(InvalidArgument, match="page_token"):
        client.list(INV, page_token="garbage!")
    with pytest.raises(InvalidArgument, match="page_size"):
        client.list(INV, page_size=-1)
    assert len(client.list(INV)["investigations"]) == 26  # default page size 50
    assert len(list(client.list_all(INV))) == 26


def test_filters_and_ordering(client: ResourceClient) -> None:
    client.create(INV, {"title": "a", "service": "cart", "anomaly_count": 1}, "a")
    client.create(
        INV,
        {
            "title": "b",
            "service": "cart",
            "anomaly_count": 7,
            "state": "RESOLVED",
            "labels": {"team": "pay"},
        },
        "b",
    )
    client.create(INV, {"title": "c", "service": "auth", "anomaly_count": 3}, "c")

    def ids(filter: str, order_by: str = "") -> list[str]:
        page = client.list(INV, filter=filter, order_by=order_by)
        return [r["name"].rsplit("/", 1)[1] for r in page["investigations"]]

    assert ids('state = "OPEN"') == ["a", "c"]
    assert ids("state = OPEN") == ["a", "c"]
    assert ids('state != "OPEN"') == ["b"]
    assert ids("anomaly_count > 2", "anomaly_count desc") == ["b", "c"]
    assert ids("anomaly_count < 3") == ["a"]
    assert ids('service = "cart" AND anomaly_count >= 1', "title desc") == ["b", "a"]
    assert ids('service = "auth" OR state = "RESOLVED"') == ["b", "c"]
    assert ids('NOT service = "cart"') == ["c"]
    assert ids('(title = "a" OR title = "c") AND service = "cart"') == ["a"]
    assert ids('labels.team = "pay"') == ["b"]
    assert ids('create_time > "2000-01-01T00:00:00Z"', "service, title desc") == ["c", "b", "a"]
    for bad in ['stat = "OPEN"', "state = ", '(state = "OPEN"', 'state ~ "x"']:
        with pytest.raises(InvalidArgument):
            client.list(INV, filter=bad)
    with pytest.raises(InvalidArgument, match="order_by"):
        client.list(INV, order_by="title sideways")
    with pytest.raises(InvalidArgument, match="no field"):
        client.list(INV, order_by="colour")


def test_update_masks(client: ResourceClient) -> None:
    inv = client.create(INV, {"title": "t", "summary": "s", "labels": {"a": "1", "b": "2"}}, "m")
    name = inv["name"]
    # No mask: every field in the body.
    out = client.update(name, {"summary": "s2", "severity": "high"})
    assert (out["summary"], out["severity"], out["title"]) == ("s2", "high", "t")
    # A masked path absent from the body is cleared; a nested path touches one key.
    out = client.update(name, {"labels": {"a": "9"}}, update_mask=["summary", "labels.a"])
    assert "summary" not in out and out["labels"] == {"a": "9", "b": "2"}
    # "*" replaces the whole resource (defaults come back for what is not given).
    out = client.update(name, {"title": "new"}, update_mask=["*"])
    assert out["title"] == "new" and out["labels"] == {} and "severity" not in out
    assert out["state"] == "OPEN"
    # Output-only fields in a mask change nothing.
    out2 = client.update(name, {"create_time": "1999-01-01T00:00:00Z"}, update_mask=["create_time"])
    assert out2["create_time"] == inv["create_time"]
    with pytest.raises(InvalidArgument, match="cannot be cleared"):
        client.update(name, {}, update_mask=["title"])
    with pytest.raises(InvalidArgument, match="must be one of"):
        client.update(name, {"state": "NAPPING"})
    with pytest.raises(InvalidArgument, match="update_mask"):
        client.update(name, {}, update_mask=["labels..a"])
    with pytest.raises(InvalidArgument, match="names"):
        client.update(name, {"name": f"{INV}/other", "title": "x"})
    with pytest.raises(NotFound):
        client.update(f"{INV}/missing", {"title": "x"})


def test_etag_conflicts(client: ResourceClient, base_url: str) -> None:
    inv = client.create(INV, {"title": "t"}, "e")
    name = inv["name"]
    first = client.update(name, {"summary": "one", "etag": inv["etag"]})
    with pytest.raises(EtagMismatch):
        client.update(name, {"summary": "stale", "etag": inv["etag"]})
    status, body = raw("PATCH", f"{base_url}/v1/{name}", {"summary": "x", "etag": "stale"})
    assert (status, body["error"]["status"]) == (409, "ABORTED")
    assert client.get(name)["summary"] == "one"
    with pytest.raises(EtagMismatch):
        client.delete(name, etag=inv["etag"])
    client.delete(name, etag=first["etag"])


def test_findings_nest_under_investigations_and_block_delete(client: ResourceClient) -> None:
    with pytest.raises(NotFound):
        client.create(f"{INV}/ghost/findings", {"summary": "x"})
    inv = client.create(INV, {"title": "t"}, "p")
    finding = client.create(
        f"{inv['name']}/findings", {"summary": "db is slow", "evidence": [{"sql": "select 1"}]}
    )
    assert finding["name"].startswith(f"{inv['name']}/findings/")
    assert client.list(f"{inv['name']}/findings")["findings"] == [finding]
    with pytest.raises(FailedPrecondition):
        client.delete(inv["name"])
    client.delete(inv["name"], force=True)
    with pytest.raises(NotFound):
        client.get(finding["name"])
    with pytest.raises(NotFound):
        client.list(f"{inv['name']}/findings")


def test_approvals_are_resources_too(client: ResourceClient) -> None:
    approval = client.create(
        "tenants/default/approvals", {"action": "resolve", "investigation": f"{INV}/x"}
    )
    assert approval["state"] == "PENDING"
    done = client.update(approval["name"], {"state": "APPROVED", "decided_by": "ann"})
    assert done["state"] == "APPROVED"
    assert client.list("tenants/default/approvals", filter='state = "PENDING"')["approvals"] == []


def test_tenancy_is_enforced(store: SQLiteResourceStore) -> None:
    auth = Authenticator("default", {"tok-a": "alpha", "tok-b": "beta"})
    with serving(store, auth) as url:
        alpha = ResourceClient(url, token="tok-a")
        created = alpha.create("tenants/alpha/investigations", {"title": "mine"})
        assert alpha.get(created["name"])["title"] == "mine"
        beta = ResourceClient(url, token="tok-b")
        with pytest.raises(TenantError):
            beta.get(created["name"])
        with pytest.raises(TenantError):
            beta.list("tenants/alpha/investigations")
        with pytest.raises(Unauthenticated):
            ResourceClient(url).list("tenants/alpha/investigations")
        with pytest.raises(Unauthenticated):
            ResourceClient(url, token="wrong").list("tenants/alpha/investigations")
