"""The detection engine: tumbling event-time windows per tenant, service and signal (pure).

Records are folded into the window their event time falls in. A service's windows close once
its newest event time (its watermark) passes a window's end by the allowed lateness; windows of a
service that went quiet close after ``idle_seconds`` of wall time without records. Records for a
window that already closed are late and dropped (counted). Gaps between windows are scored as
empty windows, so a service whose traffic stops mid-stream shows a drop; a service that stays
silent has its empty windows scored while it is silent (once they are ``idle_seconds`` past on
the service's own clock), so a stop is noticed without waiting for traffic to resume.

The engine keeps all state in memory and reports what changed through :meth:`take_changes`, so
the caller can persist it atomically together with the offsets it consumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agents.anomalies import Anomaly
from agents.detection.detector import DetectorConfig, ServiceState, evaluate_window
from agents.detection.telemetry import LogFact, SpanFact
from agents.detection.windows import WindowStats

ServiceKey = tuple[str, str, str]  # signal, tenant, service
WindowKey = tuple[str, str, str, int]  # signal, tenant, service, window start (us)
#: At most this many empty windows are scored for one gap (a long silence is one drop).
MAX_GAP_WINDOWS = 60


@dataclass
class Changes:
    """What changed since the last :meth:`DetectionEngine.take_changes`."""

    services: dict[ServiceKey, ServiceState] = field(default_factory=dict)
    windows: dict[WindowKey, WindowStats] = field(default_factory=dict)
    closed_windows: set[WindowKey] = field(default_factory=set)
    signatures: list[tuple[str, str, str, int]] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.services or self.windows or self.closed_windows or self.anomalies)


class DetectionEngine:
    """Windowed per-service state and the detectors over it."""

    def __init__(self, config: DetectorConfig):
        self.config = config
        self.services: dict[ServiceKey, ServiceState] = {}
        self.windows: dict[WindowKey, WindowStats] = {}
        self.signatures: dict[tuple[str, str], dict[str, int]] = {}
        #: Wall time (seconds) of the last record per service: drives idle closing.
        self.last_activity: dict[ServiceKey, float] = {}
        self.late_records = 0
        #: Wall time (us) this engine's state was loaded: windows that ended before it passed
        #: while no detector ran (-1: never loaded, all windows were seen live).
        self.resumed_us = -1
        self._changes = Changes()

    # -- loading persisted state ------------------------------------------------------------
    def load(
        self,
        services: Iterable[ServiceState],
        windows: Iterable[tuple[WindowKey, WindowStats]],
        signatures: Iterable[tuple[str, str, str, int]],
        wall_now: float,
    ) -> None:
        self.resumed_us = int(wall_now * 1_000_000)
        for state in services:
            key = (state.signal, state.tenant, state.service)
            self.services[key] = state
            # After a restart give every service a full idle period to show up again.
            self.last_activity[key] = wall_now
        for window_key, stats in windows:
            self.windows[window_key] = stats
        for tenant, service, fp, first_seen in signatures:
            self.signatures.setdefault((tenant, service), {})[fp] = first_seen

    # -- folding records in -------------------------------------------------------------------
    def _state(self, signal: str, tenant: str, service: str) -> ServiceState:
        key = (signal, tenant, service)
        state = self.services.get(key)
        if state is None:
            state = self.services[key] = ServiceState(tenant, service, signal)
        return state

    def _window(self, state: ServiceState, time_us: int, wall_now: float) -> WindowStats | None:
        width = self.config.window_us
        start = time_us - time_us % width
        if start <= state.closed_through_us:
            self.late_records += 1
            return None
        key = (state.signal, state.tenant, state.service, start)
        stats = self.windows.get(key)
        if stats is None:
            stats = self.windows[key] = WindowStats(start)
        self._changes.windows[key] = stats
        # A client clock far ahead must not close everyone's windows: cap the watermark.
        cap = int(wall_now * 1_000_000) + width
        state.watermark_us = max(state.watermark_us, min(time_us, cap))
        self._changes.services[(state.signal, state.tenant, state.service)] = state
        return stats

    def observe_spans(self, tenant: str, facts: Iterable[SpanFact], wall_now: float) -> None:
        for fact in facts:
            state = self._state("spans", tenant, fact.service)
            window = self._window(state, fact.time_us, wall_now)
            if window is not None:
                window.add_span(fact)
            self.last_activity[("spans", tenant, fact.service)] = wall_now

    def observe_logs(self, tenant: str, facts: Iterable[LogFact], wall_now: float) -> None:
        for fact in facts:
            state = self._state("logs", tenant, fact.service)
            window = self._window(state, fact.time_us, wall_now)
            if window is not None:
                window.add_log(fact)
            self.last_activity[("logs", tenant, fact.service)] = wall_now

    # -- closing windows ----------------------------------------------------------------------
    def _open_starts(self, key: ServiceKey) -> list[int]:
        return sorted(s for (sig, t, svc, s) in self.windows if (sig, t, svc) == key)

    def _close(
        self, state: ServiceState, start: int, detected_at_us: int, judge_drops: bool = True
    ) -> None:
        width = self.config.window_us
        known = self.signatures.setdefault((state.tenant, state.service), {})
        # Score the silent windows between the last closed one and this one as empty, except
        # those that ended while no detector ran: the silence of a service cannot be told from
        # emberlake itself being down.
        if state.closed_through_us >= 0:
            gap_start = self._first_witnessed(
                max(state.closed_through_us + width, start - MAX_GAP_WINDOWS * width)
            )
            for empty in range(gap_start, start, width):
                self._evaluate(
                    state, WindowStats(empty), known, detected_at_us, self.config.silence_alerts
                )
        key = (state.signal, state.tenant, state.service, start)
        stats = self.windows.pop(key, None) or WindowStats(start)
        self._changes.windows.pop(key, None)
        self._changes.closed_windows.add(key)
        self._evaluate(state, stats, known, detected_at_us, judge_drops)

    def _first_witnessed(self, start: int) -> int:
        """The first window from ``start`` on that had not ended when this engine was loaded."""
        width = self.config.window_us
        if self.resumed_us < 0 or start + width > self.resumed_us:
            return start
        return self.resumed_us - self.resumed_us % width

    def _evaluate(
        self,
        state: ServiceState,
        stats: WindowStats,
        known: dict[str, int],
        detected_at_us: int,
        judge_drops: bool = True,
    ) -> None:
        before = set(known)
        self._changes.anomalies.extend(
            evaluate_window(stats, state, known, self.config, detected_at_us, judge_drops)
        )
        for fp in set(known) - before:
            self._changes.signatures.append((state.tenant, state.service, fp, known[fp]))
        self._changes.services[(state.signal, state.tenant, state.service)] = state

    def close_ready(self, wall_now: float) -> None:
        """Close every window whose end plus lateness its service's watermark has passed."""
        width = self.config.window_us
        lateness = int(self.config.lateness_seconds * 1_000_000)
        now_us = int(wall_now * 1_000_000)
        for key in sorted({(sig, t, svc) for (sig, t, svc, _) in self.windows}):
            state = self.services[key]
            for start in self._open_starts(key):
                if start + width + lateness > state.watermark_us:
                    break
                self._close(state, start, now_us)

    def close_idle(self, wall_now: float) -> None:
        """Close the windows of services that sent nothing for ``idle_seconds``."""
        now_us = int(wall_now * 1_000_000)
        for key in sorted({(sig, t, svc) for (sig, t, svc, _) in self.windows}):
            if wall_now - self.last_activity.get(key, wall_now) < self.config.idle_seconds:
                continue
            state = self.services[key]
            # The service stopped sending during its last open window, so that window is short
            # by construction: its drop is the stop itself, reported only as a silence alert.
            for start in self._open_starts(key):
                self._close(state, start, now_us, judge_drops=self.config.silence_alerts)
        if self.config.silence_alerts:
            self._score_silence(wall_now)

    def _score_silence(self, wall_now: float) -> None:
        """Score the windows a silent service left empty, up to what its clock would show now.

        A service's clock is taken as its watermark advanced by the wall time since its last
        record; a window counts once it ended ``idle_seconds`` plus the lateness before that, the
        same grace an idle service's open window gets, so data merely delayed is not scored away.
        """
        cfg = self.config
        width = cfg.window_us
        grace_us = int((cfg.idle_seconds + cfg.lateness_seconds) * 1_000_000)
        now_us = int(wall_now * 1_000_000)
        active = {(sig, t, svc) for (sig, t, svc, _) in self.windows}
        for key in sorted(self.services.keys() - active):
            state = self.services[key]
            last = self.last_activity.get(key)
            if key[0] != "spans" or last is None or state.closed_through_us < 0:
                continue  # only request rates fire on a drop
            rate = state.metrics.get("requests_per_second")
            if rate is None or rate.baseline.mean < cfg.min_requests:
                continue  # too quiet for silence to mean anything
            if state.silent_since_us >= 0:
                continue  # this silence was scored already; it ends with the next record
            # Since a restart, the service's clock runs on from the restart at the latest.
            clock = max(state.watermark_us, self.resumed_us)
            horizon = clock + int((wall_now - last) * 1_000_000) - grace_us
            known = self.signatures.setdefault((state.tenant, state.service), {})
            start = self._first_witnessed(state.closed_through_us + width)
            for _ in range(MAX_GAP_WINDOWS):
                if start + width > horizon or state.silent_since_us >= 0:
                    break
                self._evaluate(state, WindowStats(start), known, now_us)
                start += width

    def take_changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
        return changes
