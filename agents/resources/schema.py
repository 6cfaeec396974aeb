"""The resource collections: their names, where they nest, and the fields they know.

Resources are JSON objects. Each collection lists the fields it understands, with a type, an
optional set of allowed values and a default; those fields are validated, filterable and
sortable. A resource may carry further fields (an agent's notes, a link to a session): they are
stored and returned as given, but cannot be filtered or sorted on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.silences import check_silence
from emberlake.errors import InvalidArgument

#: Fields the server sets; a client's values for them are ignored.
OUTPUT_ONLY = ("name", "create_time", "update_time", "etag")


@dataclass(frozen=True)
class Field:
    """One known field: JSON type ("string", "integer", "number", "boolean", "list", "object",
    "timestamp"), allowed values, default, and whether Create needs it."""

    type: str
    values: tuple[str, ...] = ()
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Collection:
    """A collection of resources, e.g. ``investigations`` under ``tenants/{t}``."""

    plural: str
    singular: str
    #: Plural of the parent collection under the tenant, or None when the tenant is the parent.
    parent: str | None
    fields: dict[str, Field] = field(default_factory=dict)
    #: Rules across fields, run after the field checks on Create and Update: takes the resource
    #: and the time of the request, returns it normalised or raises InvalidArgument.
    check: Callable[[dict[str, Any], str], dict[str, Any]] | None = None

    def known(self, name: str) -> bool:
        return name in self.fields or name in OUTPUT_ONLY


_TS = Field("timestamp")
_STR = Field("string")

INVESTIGATION_STATES = ("OPEN", "INVESTIGATING", "RESOLVED", "DISMISSED")
#: States in which an investigation still takes new anomalies.
ACTIVE_INVESTIGATION_STATES = ("OPEN", "INVESTIGATING")

COLLECTIONS: dict[str, Collection] = {
    c.plural: c
    for c in (
        Collection(
            "investigations",
            "investigation",
            None,
            {
                "title": Field("string", required=True),
                "state": Field("string", INVESTIGATION_STATES, "OPEN"),
                "service": _STR,
                "severity": Field("string", ("low", "medium", "high", "critical")),
                "summary": _STR,
                "root_cause": _STR,
                # The investigation of the root-cause service in the same incident, by name.
                "caused_by": _STR,
                # Investigations of the same incident, by name -> {"service", "relation"}. A map
                # rather than a list: each writer sets its own key with update_mask
                # ``related.<name>``, so concurrent links never overwrite each other and a
                # repeated link changes nothing. Filter with ``related:"<name>"``.
                "related": Field("object", default={}),
                "anomalies": Field("list", default=[]),
                "anomaly_count": Field("integer", default=0),
                "fingerprints": Field("list", default=[]),
                "first_anomaly_time": _TS,
                "last_anomaly_time": _TS,
                "labels": Field("object", default={}),
            },
        ),
        Collection(
            "anomalies",
            "anomaly",
            None,
            {
                "service": Field("string", required=True),
                "kind": Field("string", required=True),
                "signal": _STR,
                "metric": _STR,
                "tenant": _STR,
                "window_start": _TS,
                "window_end": _TS,
                "observed": Field("number"),
                "expected": Field("number"),
                "score": Field("number"),
                "severity": _STR,
                "fingerprint": _STR,
                "summary": _STR,
                "detected_at": _TS,
                "example_trace_ids": Field("list", default=[]),
                "example_logs": Field("list", default=[]),
                "signature": Field("object"),
                "series": Field("list", default=[]),
                "investigation": _STR,
                # The silence that kept this anomaly out of investigations (agents/silences.py).
                "silenced_by": _STR,
            },
        ),
        Collection(
            "known_issues",
            "known_issue",
            None,
            {
                "title": Field("string", required=True),
                "description": _STR,
                "state": Field("string", ("ACTIVE", "FIXED"), "ACTIVE"),
                "services": Field("list", default=[]),
                "fingerprints": Field("list", default=[]),
                "links": Field("list", default=[]),
            },
        ),
        Collection(
            "findings",
            "finding",
            "investigations",
            {
                "summary": Field("string", required=True),
                "detail": _STR,
                "kind": _STR,
                "service": _STR,
                "confidence": Field("number"),
                "evidence": Field("list", default=[]),
            },
        ),
        Collection(
            "approvals",
            "approval",
            None,
            {
                "action": Field("string", required=True),
                "state": Field("string", ("PENDING", "APPROVED", "REJECTED"), "PENDING"),
                "investigation": _STR,
                "reason": _STR,
                "requested_by": _STR,
                "decided_by": _STR,
                "decision_time": _TS,
                "payload": Field("object", default={}),
            },
        ),
        Collection(
            "silences",
            "silence",
            None,
            {
                # "" or "*": every service of the tenant.
                "service": Field("string", required=True),
                "kinds": Field("list", default=[]),
                "start_time": _TS,
                "end_time": Field("timestamp", required=True),
                "reason": _STR,
                "created_by": _STR,
            },
            check=check_silence,
        ),
    )
}

_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "timestamp": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def validate(collection: Collection, resource: dict[str, Any], creating: bool) -> dict[str, Any]:
    """Check known fields' types and values; on create, fill defaults and demand required ones."""
    out = dict(resource)
    for name, spec in collection.fields.items():
        value = out.get(name)
        if value is None:
            if creating and spec.required:
                raise InvalidArgument(f"{collection.singular}.{name} is required")
            if creating and spec.default is not None:
                out[name] = copy.deepcopy(spec.default)
            continue
        if not _CHECKS[spec.type](value):
            raise InvalidArgument(
                f"{collection.singular}.{name} must be a {spec.type}, got {type(value).__name__}"
            )
        if spec.values and value not in spec.values:
            raise InvalidArgument(
                f"{collection.singular}.{name} must be one of {', '.join(spec.values)};"
                f" got {value!r}"
            )
    return out
