"""Investigation intake: every anomaly not silenced lands in one investigation per incident.

An anomaly attaches to an active (OPEN or INVESTIGATING) investigation of its tenant when that
investigation already holds an anomaly with the same fingerprint, or is about the same service
and its last anomaly is within ``agents.incident_window_seconds``; otherwise it opens a new one.
Only active investigations are read (by an index on state), however many closed ones a tenant
has. The anomaly is stored as ``tenants/{t}/anomalies/{anomaly id}`` in the same transaction as
the investigation's update, and its id is stable, so a replayed anomaly event changes nothing.

An anomaly covered by an active silence of its tenant (``tenants/{t}/silences/{id}``, matched on
service, kind and window start; see ``agents.silences``) is stored all the same, marked
``silenced_by: <silence name>``, and opens or extends no investigation.

:class:`InvestigationIntake` is the logic over a resource store; the detectors' faust worker
runs it as an agent on the anomaly topic (``agents.faust_app``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from agents.anomalies import Anomaly, us_from_iso
from agents.resources.names import parse_collection, parse_resource
from agents.resources.schema import ACTIVE_INVESTIGATION_STATES
from agents.resources.service import ResourceService
from agents.resources.store import ResourceStore, ResourceTransaction
from agents.silences import silencing

log = logging.getLogger(__name__)

_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
#: An investigation lists at most this many anomaly names; anomaly_count keeps counting.
MAX_LISTED = 500


@dataclass(frozen=True)
class Intake:
    """What the intake did with one anomaly."""

    investigation: str
    opened: bool
    duplicate: bool
    #: The silence that kept the anomaly out of investigations ("" when none did).
    silenced_by: str = ""


def _worse(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if _SEVERITY_RANK.get(a, 0) >= _SEVERITY_RANK.get(b, 0) else b


class InvestigationIntake:
    """Opens or extends investigations from anomalies, idempotently."""

    def __init__(self, store: ResourceStore, incident_window_seconds: float):
        self.store = store
        self.service = ResourceService(store)
        self.window_us = int(incident_window_seconds * 1_000_000)

    def _match(self, tx: ResourceTransaction, anomaly: Anomaly) -> dict[str, Any] | None:
        at = us_from_iso(anomaly.window_start)
        best: dict[str, Any] | None = None
        active = tx.children(
            f"tenants/{anomaly.tenant}", "investigations", state_in=ACTIVE_INVESTIGATION_STATES
        )
        for inv in active:
            if anomaly.fingerprint in (inv.get("fingerprints") or []):
                return inv
            if inv.get("service") != anomaly.service or not inv.get("last_anomaly_time"):
                continue
            if abs(at - us_from_iso(inv["last_anomaly_time"])) <= self.window_us:
                if best is None or inv["last_anomaly_time"] > best["last_anomaly_time"]:
                    best = inv
        return best

    def handle(self, anomaly: Anomaly) -> Intake:
        """Store the anomaly and attach it to its incident's investigation (opening one if new)."""
        tenant = anomaly.tenant
        anomalies = parse_collection(f"tenants/{tenant}/anomalies")
        with self.store.transaction() as tx:
            stored = tx.get(str(anomalies.child(anomaly.id)))
            if stored is not None:
                return Intake(
                    str(stored.get("investigation", "")),
                    False,
                    True,
                    str(stored.get("silenced_by", "")),
                )
            body = {k: v for k, v in anomaly.to_dict().items() if k != "id"}
            silence = silencing(tx.children(f"tenants/{tenant}", "silences"), anomaly)
            if silence is not None:
                body["silenced_by"] = silence
                self.service.create_in(tx, anomalies, body, anomaly.id)
                return Intake("", False, False, silence)
            inv = self._match(tx, anomaly)
            opened = inv is None
            if inv is None:
                inv = self.service.create_in(
                    tx,
                    parse_collection(f"tenants/{tenant}/investigations"),
                    {
                        "title": anomaly.summary,
                        "service": anomaly.service,
                        "severity": anomaly.severity,
                        "first_anomaly_time": anomaly.window_start,
                        "last_anomaly_time": anomaly.window_start,
                        "labels": {"opened_by": "detector", "signal": anomaly.signal},
                    },
                )
            body["investigation"] = inv["name"]
            self.service.create_in(tx, anomalies, body, anomaly.id)
            self._attach(tx, inv, anomaly, str(anomalies.child(anomaly.id)))
            return Intake(inv["name"], opened, False)

    def _attach(
        self, tx: ResourceTransaction, inv: dict[str, Any], anomaly: Anomaly, name: str
    ) -> None:
        listed = list(inv.get("anomalies") or [])
        if name not in listed and len(listed) < MAX_LISTED:
            listed.append(name)
        fingerprints = list(inv.get("fingerprints") or [])
        if anomaly.fingerprint not in fingerprints:
            fingerprints.append(anomaly.fingerprint)
        first = min(filter(None, [inv.get("first_anomaly_time"), anomaly.window_start]))
        last = max(filter(None, [inv.get("last_anomaly_time"), anomaly.window_start]))
        self.service.update_in(
            tx,
            parse_resource(inv["name"]),
            {
                "anomalies": listed,
                "anomaly_count": int(inv.get("anomaly_count") or 0) + 1,
                "fingerprints": fingerprints,
                "severity": _worse(inv.get("severity"), anomaly.severity),
                "first_anomaly_time": first,
                "last_anomaly_time": last,
            },
        )

    def handle_raw(self, value: bytes) -> Intake | None:
        """Handle one anomaly event as read from the topic; malformed events are logged, skipped."""
        try:
            anomaly = Anomaly.from_json(value)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("skipping a malformed anomaly event: %s", exc)
            return None
        return self.handle(anomaly)
