"""The detection rules: given a closed window and what was learned before it, what is anomalous.

Each metric has its own baseline (:class:`EwmaBaseline`) and a noise floor suited to its kind of
number: counts get a Poisson-like floor, the error rate a binomial one, latency is compared on a
log scale. A metric fires only after its warm-up, above the minimum volume and beyond the
z-threshold of the settings. An anomalous value is fed to the baseline clamped at the threshold,
so a spike does not teach the baseline that spikes are normal, while a lasting shift is still
absorbed after a while.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.anomalies import (
    Anomaly,
    SeriesPoint,
    anomaly_id,
    fingerprint,
    iso_from_us,
)
from agents.detection.baseline import EwmaBaseline
from agents.detection.windows import WindowStats
from emberlake.settings import AgentSettings

HISTORY = 60


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds and window layout, from ``settings.agents.detector_*``."""

    window_seconds: float = 10.0
    warmup_windows: int = 6
    min_requests: int = 20
    z_threshold: float = 4.0
    error_rate_floor: float = 0.05
    lateness_seconds: float = 10.0
    idle_seconds: float = 30.0
    silence_alerts: bool = True
    #: A metric anomalous this many windows in a row has a new normal: it is learned from then.
    adapt_after_windows: int = 30
    alpha: float = 0.1

    @classmethod
    def from_settings(cls, agents: AgentSettings) -> DetectorConfig:
        return cls(
            window_seconds=agents.detector_window_seconds,
            warmup_windows=agents.detector_warmup_windows,
            min_requests=agents.detector_min_requests,
            z_threshold=agents.detector_z_threshold,
            error_rate_floor=agents.detector_error_rate_floor,
            lateness_seconds=agents.detector_lateness_seconds,
            idle_seconds=agents.detector_idle_seconds,
            silence_alerts=agents.detector_silence_alerts,
            adapt_after_windows=agents.detector_adapt_after_windows,
        )

    @property
    def window_us(self) -> int:
        return max(1, int(self.window_seconds * 1_000_000))


@dataclass
class MetricState:
    """A metric's baseline and its recent windows (start, observed, expected) for charts."""

    baseline: EwmaBaseline
    history: list[tuple[int, float, float | None]] = field(default_factory=list)
    #: Windows in a row this metric fired for (0: its last judged window was normal).
    firing: int = 0

    def remember(self, start_us: int, observed: float, expected: float | None) -> None:
        self.history.append((start_us, observed, expected))
        del self.history[:-HISTORY]

    def to_dict(self) -> dict[str, Any]:
        return {
            "b": self.baseline.to_dict(),
            "h": [list(p) for p in self.history],
            "f": self.firing,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricState:
        return cls(
            EwmaBaseline.from_dict(data["b"]),
            [(int(s), o, e) for s, o, e in data["h"]],
            int(data.get("f", 0)),
        )


@dataclass
class ServiceState:
    """What the detector knows about one signal of one service of one tenant."""

    tenant: str
    service: str
    signal: str
    watermark_us: int = 0
    #: Windows starting at or before this are closed; later records for them are late.
    closed_through_us: int = -1
    windows_closed: int = 0
    metrics: dict[str, MetricState] = field(default_factory=dict)
    #: Start of the first empty window of a busy service's ongoing silence (-1: not silent).
    silent_since_us: int = -1

    def metric(self, name: str, alpha: float, prior_windows: int = 0) -> MetricState:
        if name not in self.metrics:
            # A metric first seen now (say ERROR logs) was zero in every earlier window.
            self.metrics[name] = MetricState(EwmaBaseline(alpha=alpha, count=prior_windows))
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "watermark_us": self.watermark_us,
            "closed_through_us": self.closed_through_us,
            "windows_closed": self.windows_closed,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "silent_since_us": self.silent_since_us,
        }

    @classmethod
    def from_dict(
        cls, tenant: str, service: str, signal: str, data: dict[str, Any]
    ) -> ServiceState:
        return cls(
            tenant,
            service,
            signal,
            int(data["watermark_us"]),
            int(data["closed_through_us"]),
            int(data["windows_closed"]),
            {k: MetricState.from_dict(v) for k, v in data["metrics"].items()},
            int(data.get("silent_since_us", -1)),
        )

    def busy(self, min_requests: int) -> bool:
        """Whether the service's usual volume makes an empty window unusual: a request or log
        rate whose baseline reaches ``min_requests`` a window."""
        return any(
            m.baseline.mean >= min_requests
            for name, m in self.metrics.items()
            if name == "requests_per_second" or name.startswith("logs_per_second.")
        )


@dataclass(frozen=True)
class _Rule:
    kind: str
    metric: str
    value: float  # on the baseline's scale
    floor: float
    two_sided: bool
    display: Callable[[float], float]  # baseline scale -> the number people read
    #: A format string over o (observed) and e (expected), in display units.
    summary: str
    examples: list[str] = field(default_factory=list)
    example_logs: list[dict[str, Any]] = field(default_factory=list)
    extra_ok: Callable[[float], bool] = lambda observed: True


def _count_floor(mean: float) -> float:
    return max(math.sqrt(max(mean, 1.0)), 0.2 * mean)


def _severity(score: float, z: float) -> str:
    if score >= 3 * z:
        return "critical"
    if score >= 2 * z:
        return "high"
    return "medium"


def _span_rules(window: WindowStats, state: ServiceState, cfg: DetectorConfig) -> list[_Rule]:
    per_s = cfg.window_seconds
    rules = [
        _Rule(
            "request_rate",
            "requests_per_second",
            float(window.requests),
            _count_floor(state.metric("requests_per_second", cfg.alpha).baseline.mean),
            True,
            lambda v: v / per_s,
            "request rate {o:.2f}/s (expected {e:.2f}/s)",
        )
    ]
    if window.requests >= cfg.min_requests:
        n = window.requests
        mean = state.metric("error_rate", cfg.alpha).baseline.mean
        p = min(max(mean, cfg.error_rate_floor / 4), 0.5)
        rules.append(
            _Rule(
                "error_rate",
                "error_rate",
                window.errors / n,
                # The 1/n term: with few expected errors the count's tail is heavier than a
                # normal curve's, and a couple of stray errors must not read as an incident.
                max(math.sqrt(p * (1 - p) / n) + 1.0 / n, 0.01),
                False,
                lambda v: v,
                "error rate {o:.1%} (expected {e:.1%})",
                examples=list(window.error_trace_ids),
                extra_ok=lambda observed: observed >= cfg.error_rate_floor,
            )
        )
        rules.append(
            _Rule(
                "latency",
                "latency_p95_ms",
                math.log(max(window.latency.quantile(0.95), 1e-3)),
                # A p95 from few samples wobbles more: widen the floor for small windows.
                0.1 + 0.5 / math.sqrt(n),
                False,
                math.exp,
                "p95 latency {o:.1f} ms (expected {e:.1f} ms)",
                examples=[t for _, t in window.slow_traces],
            )
        )
    return rules


def _log_rules(window: WindowStats, state: ServiceState, cfg: DetectorConfig) -> list[_Rule]:
    per_s = cfg.window_seconds
    names = {f"logs_per_second.{sev}" for sev in window.logs}
    names |= {m for m in state.metrics if m.startswith("logs_per_second.")}
    rules = []
    for name in sorted(names):
        severity = name.partition(".")[2]
        mean = state.metric(name, cfg.alpha, prior_windows=state.windows_closed).baseline.mean
        error_like = severity in ("ERROR", "FATAL")
        rules.append(
            _Rule(
                "log_volume",
                name,
                float(window.logs.get(severity, 0)),
                _count_floor(mean),
                False,
                lambda v: v / per_s,
                severity + " logs {o:.2f}/s (expected {e:.2f}/s)",
                example_logs=[
                    {
                        **{k: v for k, v in log.items() if k != "time_us"},
                        "time": iso_from_us(int(log["time_us"])),
                    }
                    for log in window.error_logs
                ]
                if error_like
                else [],
                examples=[log["trace_id"] for log in window.error_logs if log["trace_id"]]
                if error_like
                else [],
            )
        )
    return rules


def _volume_ok(rule: _Rule, baseline: EwmaBaseline, cfg: DetectorConfig) -> bool:
    if rule.kind in ("request_rate", "log_volume"):
        return max(rule.value, baseline.mean) >= cfg.min_requests
    return True  # error rate and latency rules exist only above the minimum volume


def evaluate_window(
    window: WindowStats,
    state: ServiceState,
    known_signatures: dict[str, int],
    cfg: DetectorConfig,
    detected_at_us: int,
    judge_drops: bool = True,
) -> list[Anomaly]:
    """Score a closed window against the baselines, then let the baselines learn from it.

    ``known_signatures`` (fingerprint -> first seen) is updated in place. With ``judge_drops``
    off, a value below its baseline neither fires nor teaches the baseline: that is how the last
    window of a service that stopped sending is taken when stops are not to be reported.

    An empty window of a busy service is a silence, not a sample of its normal traffic: the
    first one of a silence is judged (a drop, when drops are judged), none teaches the
    baselines, and the later ones are only charted. When traffic comes back it is judged
    against the baselines from before the silence, so a return to the usual volume (after an
    outage, or after emberlake itself was stopped) is not taken for a spike.
    """
    rules = (
        _span_rules(window, state, cfg)
        if state.signal == "spans"
        else _log_rules(window, state, cfg)
    )
    warmed = state.windows_closed >= cfg.warmup_windows
    silence = window.empty and state.busy(cfg.min_requests)
    still_silent = silence and state.silent_since_us >= 0
    if silence:
        if state.silent_since_us < 0:
            state.silent_since_us = window.start_us
    elif not window.empty:
        state.silent_since_us = -1
    found: list[Anomaly] = []
    for rule in rules:
        ms = state.metric(rule.metric, cfg.alpha)
        base = ms.baseline
        expected = base.mean if base.count else None
        z = base.score(rule.value, rule.floor) if base.count else 0.0
        unjudged = z < 0 and not judge_drops
        fired = (
            not unjudged
            and base.count >= cfg.warmup_windows
            and _volume_ok(rule, base, cfg)
            and (abs(z) if rule.two_sided else z) >= cfg.z_threshold
            and rule.extra_ok(rule.display(rule.value))
        )
        shown_expected = rule.display(expected) if expected is not None else None
        ms.remember(window.start_us, rule.display(rule.value), shown_expected)
        if unjudged or still_silent:
            continue
        if fired:
            observed = rule.display(rule.value)
            exp_value = shown_expected if shown_expected is not None else 0.0
            severity = _severity(abs(z), cfg.z_threshold)
            if rule.kind == "error_rate" and observed >= 0.5 and severity == "medium":
                severity = "high"
            found.append(
                _anomaly(
                    state,
                    window,
                    cfg,
                    rule.kind,
                    rule.metric,
                    observed,
                    exp_value,
                    abs(z),
                    severity,
                    rule.summary.format(o=observed, e=exp_value),
                    detected_at_us,
                    rule.examples,
                    rule.example_logs,
                    None,
                    ms.history,
                )
            )
            # An anomalous window teaches nothing (learning it, even clipped, would widen the
            # spread and hide the next incident), unless the change lasts: then it is normal.
            ms.firing += 1
            if ms.firing > cfg.adapt_after_windows and not silence:
                base.update(rule.value)
        elif not silence:
            ms.firing = 0
            base.update(rule.value)
    for fp, sig in sorted(window.signatures.items()):
        if fp in known_signatures:
            continue
        known_signatures[fp] = window.start_us
        if not warmed:
            continue  # during warm-up every signature is new: learn them silently
        metric = f"signature.{fp}"
        found.append(
            _anomaly(
                state,
                window,
                cfg,
                "new_error_signature",
                metric,
                float(sig.count),
                0.0,
                float(sig.count),
                "medium",
                f"new error {sig.type}: {sig.template}",
                detected_at_us,
                sig.trace_ids,
                [],
                {"type": sig.type, "template": sig.template},
                [(window.start_us, float(sig.count), 0.0)],
            )
        )
    state.windows_closed += 1
    state.closed_through_us = max(state.closed_through_us, window.start_us)
    return found


def _anomaly(
    state: ServiceState,
    window: WindowStats,
    cfg: DetectorConfig,
    kind: str,
    metric: str,
    observed: float,
    expected: float,
    score: float,
    severity: str,
    summary: str,
    detected_at_us: int,
    trace_ids: list[str],
    logs: list[dict[str, Any]],
    signature: dict[str, str] | None,
    history: list[tuple[int, float, float | None]],
) -> Anomaly:
    return Anomaly(
        id=anomaly_id(state.tenant, state.service, kind, metric, window.start_us),
        tenant=state.tenant,
        service=state.service,
        signal=state.signal,
        kind=kind,
        metric=metric,
        window_start=iso_from_us(window.start_us),
        window_end=iso_from_us(window.start_us + cfg.window_us),
        observed=round(observed, 6),
        expected=round(expected, 6),
        score=round(score, 3),
        severity=severity,
        fingerprint=fingerprint(state.tenant, state.service, kind, metric),
        summary=f"{state.service}: {summary}",
        detected_at=iso_from_us(detected_at_us),
        example_trace_ids=[t for t in trace_ids if t][:5],
        example_logs=logs[:5],
        signature=signature,
        series=[
            SeriesPoint(iso_from_us(s), round(o, 6), None if e is None else round(e, 6))
            for s, o, e in history
        ],
    )
