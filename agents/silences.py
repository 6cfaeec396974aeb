"""Silences: planned quiet, so a deploy or a stopped demo opens no investigation.

A silence is the resource ``tenants/{t}/silences/{id}``::

    {
      "service":    "checkout",            # exact service name; "" or "*": every service
      "kinds":      ["request_rate"],      # anomaly kinds it covers; [] (default): every kind
      "start_time": "2026-11-22T10:00:00Z",  # default: when it is created
      "end_time":   "2026-11-22T10:30:00Z",  # required, after start_time, at most MAX_DURATION
      "reason":     "deploy 1.9.0",
      "created_by": "ana"
    }

The investigation intake still stores a silenced anomaly (nothing is lost, and it can be audited
with the filter ``silenced_by:*``) but marks it ``silenced_by: <silence name>`` and opens or
extends no investigation. A silence covers an anomaly whose window starts in
``[start_time, end_time)``; it does not reach back to anomalies already taken in, so create it
before the planned stop. This module is pure: the rule check run on Create and Update, and the
match run by the intake.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.anomalies import KINDS, Anomaly, us_from_iso
from emberlake.errors import InvalidArgument

#: The longest silence: muting is for planned stops, not a way to switch a service's alerts off.
MAX_DURATION = timedelta(days=7)
#: The service value meaning "every service of the tenant".
ALL_SERVICES = "*"


def _instant(resource: dict[str, Any], field: str) -> datetime:
    text = resource[field]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"silence.{field} must be an RFC 3339 time such as 2026-11-22T10:00:00Z, got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidArgument(f"silence.{field} needs a time zone (a Z suffix for UTC): {text!r}")
    return parsed.astimezone(UTC)


def _rfc3339(at: datetime) -> str:
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_silence(resource: dict[str, Any], now: str) -> dict[str, Any]:
    """The silence with its rules checked and its values normalised, or InvalidArgument.

    Times become UTC with a Z suffix and microseconds (the form of ``create_time``), so filters
    and ``order_by`` compare them correctly as text; a missing ``start_time`` becomes ``now``;
    an empty service becomes ``*``.
    """
    out = dict(resource)
    if out.get("start_time") is None:
        out["start_time"] = now
    start, end = _instant(out, "start_time"), _instant(out, "end_time")
    if end <= start:
        raise InvalidArgument(
            f"silence.end_time ({out['end_time']}) must be after start_time ({out['start_time']})"
        )
    if end - start > MAX_DURATION:
        raise InvalidArgument(
            f"a silence lasts at most {MAX_DURATION.days} days; this one lasts"
            f" {(end - start).total_seconds() / 86400:.1f} days:"
            " shorten it (and create another when that one ends, if it must go on)"
        )
    out["start_time"], out["end_time"] = _rfc3339(start), _rfc3339(end)
    service = out.get("service")
    if service is not None:
        out["service"] = service.strip() or ALL_SERVICES
    kinds = out.get("kinds") or []
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InvalidArgument(
            f"silence.kinds: unknown anomaly kind(s) {', '.join(map(repr, unknown))};"
            f" known: {', '.join(KINDS)} (leave kinds empty for all)"
        )
    out["kinds"] = sorted(set(kinds))
    return out


@dataclass(frozen=True)
class Silence:
    """A stored silence, read for matching."""

    name: str
    service: str
    kinds: tuple[str, ...]
    start_us: int
    end_us: int

    @classmethod
    def from_resource(cls, resource: dict[str, Any]) -> Silence:
        return cls(
            resource["name"],
            resource.get("service") or ALL_SERVICES,
            tuple(resource.get("kinds") or ()),
            us_from_iso(resource["start_time"]),
            us_from_iso(resource["end_time"]),
        )

    def covers(self, service: str, kind: str, at_us: int) -> bool:
        """Whether an anomaly of ``service`` and ``kind`` at ``at_us`` is silenced by this."""
        return (
            self.service in (ALL_SERVICES, service)
            and (not self.kinds or kind in self.kinds)
            and self.start_us <= at_us < self.end_us
        )


def silencing(silences: Iterable[dict[str, Any]], anomaly: Anomaly) -> str | None:
    """The name of a silence covering the anomaly (its window start), or None.

    When several do, the one named first wins, so a replay of the same input picks the same one.
    """
    at = us_from_iso(anomaly.window_start)
    names = []
    for resource in silences:
        try:
            silence = Silence.from_resource(resource)
        except (KeyError, TypeError, ValueError):
            continue  # not written through the API (it checks these); cannot silence anything
        if silence.covers(anomaly.service, anomaly.kind, at):
            names.append(silence.name)
    return min(names) if names else None
