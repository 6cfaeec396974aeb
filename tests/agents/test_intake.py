"""Investigation intake: one investigation per incident, idempotent under replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.anomalies import Anomaly, anomaly_id, fingerprint, iso_from_us
from agents.investigator_intake import InvestigationIntake
from agents.resources.service import ResourceService
from agents.resources.sqlite import SQLiteResourceStore

MIN = 60_000_000
T0 = 1_800_000_000_000_000


def anomaly(
    service: str, kind: str, at_us: int, severity: str = "medium", tenant: str = "default"
) -> Anomaly:
    metric = {"error_rate": "error_rate", "latency": "latency_p95_ms"}.get(kind, kind)
    return Anomaly(
        id=anomaly_id(tenant, service, kind, metric, at_us),
        tenant=tenant,
        service=service,
        signal="spans",
        kind=kind,
        metric=metric,
        window_start=iso_from_us(at_us),
        window_end=iso_from_us(at_us + 10_000_000),
        observed=0.4,
        expected=0.01,
        score=30.0,
        severity=severity,
        fingerprint=fingerprint(tenant, service, kind, metric),
        summary=f"{service}: {kind}",
        detected_at=iso_from_us(at_us + 20_000_000),
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteResourceStore:
    return SQLiteResourceStore(tmp_path / "resources.db")


def test_one_investigation_per_incident_and_replays_change_nothing(
    store: SQLiteResourceStore,
) -> None:
    intake = InvestigationIntake(store, incident_window_seconds=600)
    first = intake.handle(anomaly("checkout", "error_rate", T0))
    assert first.opened and not first.duplicate
    # Same service, another kind, two minutes later: same incident.
    second = intake.handle(anomaly("checkout", "latency", T0 + 2 * MIN, severity="critical"))
    assert second.investigation == first.investigation and not second.opened
    # Another service: another investigation.
    other = intake.handle(anomaly("payments", "error_rate", T0 + MIN))
    assert other.opened and other.investigation != first.investigation
    # Replays (a detector republished after a crash) are recognised by id.
    again = intake.handle(anomaly("checkout", "latency", T0 + 2 * MIN, severity="critical"))
    assert again.duplicate and again.investigation == first.investigation

    service = ResourceService(store)
    inv = service.get(first.investigation)
    assert inv["anomaly_count"] == 2 and len(inv["anomalies"]) == 2
    assert inv["severity"] == "critical" and inv["service"] == "checkout"
    assert inv["first_anomaly_time"] == iso_from_us(T0)
    assert inv["last_anomaly_time"] == iso_from_us(T0 + 2 * MIN)
    stored = service.get(inv["anomalies"][1])
    assert stored["investigation"] == first.investigation and stored["kind"] == "latency"
    assert service.list("tenants/default/investigations").total_size == 2
    assert service.list("tenants/default/anomalies").total_size == 3


def test_outside_the_incident_window_only_the_fingerprint_attaches(
    store: SQLiteResourceStore,
) -> None:
    intake = InvestigationIntake(store, incident_window_seconds=60)
    first = intake.handle(anomaly("checkout", "error_rate", T0))
    later_same = intake.handle(anomaly("checkout", "error_rate", T0 + 30 * MIN))
    assert later_same.investigation == first.investigation
    later_other = intake.handle(anomaly("checkout", "latency", T0 + 60 * MIN))
    assert later_other.opened


def test_closed_investigations_take_no_new_anomalies(store: SQLiteResourceStore) -> None:
    intake = InvestigationIntake(store, incident_window_seconds=600)
    first = intake.handle(anomaly("checkout", "error_rate", T0))
    ResourceService(store).update(first.investigation, {"state": "RESOLVED"})
    again = intake.handle(anomaly("checkout", "error_rate", T0 + MIN))
    assert again.opened and again.investigation != first.investigation


def test_tenants_are_kept_apart_and_bad_events_are_skipped(store: SQLiteResourceStore) -> None:
    intake = InvestigationIntake(store, incident_window_seconds=600)
    a = intake.handle(anomaly("checkout", "error_rate", T0, tenant="alpha"))
    b = intake.handle(anomaly("checkout", "error_rate", T0, tenant="beta"))
    assert a.investigation.startswith("tenants/alpha/") and b.investigation.startswith(
        "tenants/beta/"
    )
    assert intake.handle_raw(b"not json") is None
    assert intake.handle_raw(b"[1, 2]") is None
    ok = intake.handle_raw(anomaly("checkout", "latency", T0, tenant="alpha").to_json())
    assert ok is not None and ok.investigation == a.investigation


def silence(store: SQLiteResourceStore, tenant: str = "default", **body: object) -> str:
    """A silence created through the resource service (so its rules are checked)."""
    created = ResourceService(store).create(f"tenants/{tenant}/silences", dict(body))
    return str(created["name"])


def test_a_silenced_anomaly_is_stored_marked_and_opens_nothing(
    store: SQLiteResourceStore,
) -> None:
    intake = InvestigationIntake(store, incident_window_seconds=600)
    service = ResourceService(store)
    muted = silence(
        store,
        service="checkout",
        kinds=["request_rate"],
        start_time=iso_from_us(T0),
        end_time=iso_from_us(T0 + 10 * MIN),
        reason="deploy",
    )
    drop = anomaly("checkout", "request_rate", T0 + MIN)
    result = intake.handle(drop)
    assert result.silenced_by == muted and result.investigation == ""
    assert not result.opened and not result.duplicate
    stored = service.get(f"tenants/default/anomalies/{drop.id}")
    assert stored["silenced_by"] == muted and "investigation" not in stored
    assert service.list("tenants/default/investigations").total_size == 0

    # Another kind, another service, and the times just outside the silence are not silenced.
    for other in (
        anomaly("checkout", "error_rate", T0 + MIN),
        anomaly("payments", "request_rate", T0 + MIN),
        anomaly("checkout", "request_rate", T0 - MIN),
        anomaly("checkout", "request_rate", T0 + 10 * MIN),  # the end is exclusive
    ):
        assert intake.handle(other).silenced_by == "", other
    assert service.list("tenants/default/investigations").total_size == 2

    # A replay changes nothing, even once the silence is gone.
    before = service.list("tenants/default/investigations").resources
    service.delete(muted)
    again = intake.handle(drop)
    assert again.duplicate and again.silenced_by == muted and again.investigation == ""
    assert service.list("tenants/default/investigations").resources == before
    assert service.list("tenants/default/anomalies", filter="silenced_by:*").total_size == 1
    assert service.list("tenants/default/anomalies").total_size == 5


def test_a_silenced_anomaly_does_not_extend_an_open_investigation(
    store: SQLiteResourceStore,
) -> None:
    intake = InvestigationIntake(store, incident_window_seconds=600)
    first = intake.handle(anomaly("checkout", "request_rate", T0 - 2 * MIN))
    before = ResourceService(store).get(first.investigation)
    # Every service, every kind: "" means all, as "*" does.
    muted = silence(store, service="", start_time=iso_from_us(T0), end_time=iso_from_us(T0 + MIN))
    same_incident = intake.handle(anomaly("checkout", "request_rate", T0 + 1_000_000))
    assert same_incident.silenced_by == muted
    after = ResourceService(store).get(first.investigation)
    assert after == before  # not even its etag moved
    assert after["anomaly_count"] == 1


def test_silences_belong_to_their_tenant(store: SQLiteResourceStore) -> None:
    intake = InvestigationIntake(store, incident_window_seconds=600)
    silence(
        store,
        tenant="alpha",
        service="*",
        start_time=iso_from_us(T0),
        end_time=iso_from_us(T0 + MIN),
    )
    assert intake.handle(anomaly("checkout", "latency", T0, tenant="alpha")).silenced_by
    beta = intake.handle(anomaly("checkout", "latency", T0, tenant="beta"))
    assert beta.silenced_by == "" and beta.opened


def test_the_intake_reads_only_active_investigations_by_index(
    store: SQLiteResourceStore,
) -> None:
    service = ResourceService(store)
    for i in range(30):  # a tenant's history: many closed investigations of the same service
        service.create(
            "tenants/default/investigations",
            {"title": f"old {i}", "service": "checkout", "state": "RESOLVED"},
            resource_id=f"old{i}",
        )
    intake = InvestigationIntake(store, incident_window_seconds=600)
    first = intake.handle(anomaly("checkout", "error_rate", T0))
    assert first.opened  # closed ones are never matched
    with store.transaction() as tx:
        active = tx.children(
            "tenants/default", "investigations", state_in=("OPEN", "INVESTIGATING")
        )
        everything = tx.children("tenants/default", "investigations")
    assert [inv["name"] for inv in active] == [first.investigation]
    assert len(everything) == 31
    with store.transaction() as tx:
        plan = tx._conn.execute(  # type: ignore[attr-defined]
            "EXPLAIN QUERY PLAN SELECT body FROM resources WHERE parent = ? AND collection = ?"
            " AND json_extract(body, '$.state') IN (?, ?)",
            ("tenants/default", "investigations", "INVESTIGATING", "OPEN"),
        ).fetchall()
    assert "resources_by_state" in str(plan)
