"""Detector rules on synthetic series: spikes are caught, noise and slow drift are not."""

from __future__ import annotations

import math
import random

from agents.anomalies import iso_from_us
from agents.detection.detector import DetectorConfig, ServiceState, evaluate_window
from agents.detection.signature import error_signature
from agents.detection.telemetry import LogFact, SpanFact
from agents.detection.windows import WindowStats

CFG = DetectorConfig(window_seconds=10, warmup_windows=6, min_requests=20, z_threshold=4.0)
W = CFG.window_us


def poisson(rng: random.Random, lam: float) -> int:
    # Normal approximation is plenty for lam >= 20.
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def span_window(
    index: int, rng: random.Random, requests: int, error_rate: float, latency_ms: float
) -> WindowStats:
    stats = WindowStats(index * W)
    for _ in range(requests):
        stats.add_span(
            SpanFact(
                service="checkout",
                time_us=index * W,
                duration_ms=latency_ms * math.exp(rng.gauss(0, 0.3)),
                is_request=True,
                is_error=rng.random() < error_rate,
                trace_id=f"{rng.getrandbits(128):032x}",
            )
        )
    return stats


def run(series: list[WindowStats], state: ServiceState | None = None) -> list:
    state = state or ServiceState("default", "checkout", series[0] and "spans")
    known: dict[str, int] = {}
    found = []
    for stats in series:
        found.extend(evaluate_window(stats, state, known, CFG, stats.start_us + W))
    return found


def test_steady_noise_raises_nothing() -> None:
    rng = random.Random(7)
    series = [span_window(i, rng, poisson(rng, 100), 0.01, 40.0) for i in range(600)]
    assert run(series) == []


def test_slow_daily_drift_raises_nothing() -> None:
    # One day of 10-second windows with traffic and latency swinging by 3x and 2x.
    rng = random.Random(11)
    day = 8640
    series = []
    for i in range(0, day, 6):  # every sixth window keeps the test quick; drift stays slow
        phase = math.sin(2 * math.pi * i / day)
        series.append(
            span_window(i, rng, poisson(rng, 150 + 100 * phase), 0.01, 40.0 * (1.5 + 0.5 * phase))
        )
    assert run(series) == []


def test_error_spike_is_caught_with_examples() -> None:
    rng = random.Random(3)
    series = [span_window(i, rng, poisson(rng, 100), 0.01, 40.0) for i in range(30)]
    series.append(span_window(30, rng, 100, 0.4, 40.0))
    found = run(series)
    assert [a.kind for a in found] == ["error_rate"]
    spike = found[0]
    assert spike.observed > 0.3 and spike.expected < 0.03
    assert spike.severity in ("high", "critical")
    assert spike.example_trace_ids and len(spike.example_trace_ids[0]) == 32
    assert spike.window_start.endswith("Z") and len(spike.series) == 31
    assert spike.series[-1].observed == spike.observed


def test_latency_spike_is_caught_and_does_not_poison_the_baseline() -> None:
    rng = random.Random(5)
    series = [span_window(i, rng, poisson(rng, 100), 0.01, 40.0) for i in range(30)]
    series.append(span_window(30, rng, 100, 0.01, 400.0))
    series += [span_window(i, rng, poisson(rng, 100), 0.01, 40.0) for i in range(31, 60)]
    series.append(span_window(60, rng, 100, 0.01, 400.0))
    found = run(series)
    assert [(a.kind, a.metric) for a in found] == [("latency", "latency_p95_ms")] * 2
    assert found[0].observed > 5 * found[0].expected
    assert found[0].id != found[1].id and found[0].fingerprint == found[1].fingerprint


def test_request_rate_spike_and_drop() -> None:
    rng = random.Random(9)
    series = [span_window(i, rng, poisson(rng, 100), 0.0, 40.0) for i in range(30)]
    series.append(span_window(30, rng, 400, 0.0, 40.0))
    series += [span_window(i, rng, poisson(rng, 100), 0.0, 40.0) for i in range(31, 40)]
    series.append(WindowStats(40 * W))  # silence
    found = run(series)
    assert [a.kind for a in found] == ["request_rate", "request_rate"]
    assert found[0].observed > found[0].expected and found[1].observed == 0


def test_nothing_fires_during_warm_up_or_below_minimum_volume() -> None:
    rng = random.Random(1)
    # A burst in the second window: still warming up.
    series = [span_window(0, rng, 100, 0.0, 40.0), span_window(1, rng, 100, 0.9, 900.0)]
    assert run(series) == []
    # A service with 5 requests per window: one bad window is not evidence.
    small = [span_window(i, rng, 5, 0.0, 40.0) for i in range(30)]
    small.append(span_window(30, rng, 5, 1.0, 900.0))
    assert run(small) == []


def log_window(
    index: int, counts: dict[str, int], errors: list[tuple[str, str]] = ()
) -> WindowStats:
    stats = WindowStats(index * W)
    for severity, n in counts.items():
        for k in range(n):
            stats.add_log(
                LogFact("checkout", index * W, severity, f"{k:032x}", f"{k:016x}", "msg", None)
            )
    for exc_type, message in errors:
        stats.add_log(
            LogFact(
                "checkout",
                index * W,
                "ERROR",
                "ab" * 16,
                "cd" * 8,
                message,
                error_signature(exc_type, message),
            )
        )
    return stats


def test_error_log_burst_fires_even_when_errors_were_never_seen_before() -> None:
    rng = random.Random(2)
    state = ServiceState("default", "checkout", "logs")
    series = [log_window(i, {"INFO": poisson(rng, 200)}) for i in range(20)]
    series.append(log_window(20, {"INFO": 200, "ERROR": 60}))
    found = run(series, state)
    assert [(a.kind, a.metric) for a in found] == [("log_volume", "logs_per_second.ERROR")]
    assert found[0].example_logs and found[0].example_logs[0]["time"].endswith("Z")


def test_new_error_signature_fires_once_after_warm_up() -> None:
    state = ServiceState("default", "checkout", "logs")
    series = [
        log_window(i, {"INFO": 50}, [("KeyError", f"missing key 'user-{i}'")]) for i in range(10)
    ]
    series.append(
        log_window(
            10,
            {"INFO": 50},
            [("TimeoutError", "db call took 3001 ms"), ("KeyError", "missing key 'user-77'")],
        )
    )
    series.append(log_window(11, {"INFO": 50}, [("TimeoutError", "db call took 12 ms")]))
    found = run(series, state)
    assert [a.kind for a in found] == ["new_error_signature"]
    assert found[0].signature == {"type": "TimeoutError", "template": "db call took <num> ms"}


def test_state_survives_serialisation() -> None:
    rng = random.Random(4)
    state = ServiceState("default", "checkout", "spans")
    series = [span_window(i, rng, 100, 0.01, 40.0) for i in range(10)]
    # An incident still going on and a silence begun: both are part of the state to keep.
    series += [span_window(i, rng, 100, 0.6, 40.0) for i in range(10, 12)]
    series.append(WindowStats(12 * W))
    run(series, state)
    assert state.metrics["error_rate"].firing == 2 and state.silent_since_us == 12 * W
    copy = ServiceState.from_dict("default", "checkout", "spans", state.to_dict())
    assert copy == state
    older = state.to_dict()
    del older["silent_since_us"]  # state written before silences were tracked
    assert ServiceState.from_dict("default", "checkout", "spans", older).silent_since_us == -1
    stats = span_window(10, rng, 100, 0.5, 40.0)
    assert WindowStats.from_dict(stats.to_dict()) == stats


def test_an_incident_teaches_nothing_so_the_next_one_is_caught_too() -> None:
    rng = random.Random(13)
    normal = lambda i: span_window(i, rng, poisson(rng, 100), 0.02, 40.0)  # noqa: E731
    series = [normal(i) for i in range(30)]
    series += [span_window(i, rng, 100, 0.7, 40.0) for i in range(30, 36)]  # a minute of errors
    series += [normal(i) for i in range(36, 46)]  # back to normal for 100 s
    series += [span_window(i, rng, 100, 0.5, 40.0) for i in range(46, 48)]  # again
    state = ServiceState("default", "checkout", "spans")
    found = run(series, state)
    windows = sorted({a.window_start for a in found if a.kind == "error_rate"})
    assert len(windows) == 8  # every window of both incidents
    second = [a for a in found if a.window_start >= windows[6]]
    assert second and all(a.expected < 0.05 for a in second)
    assert state.metrics["error_rate"].baseline.mean < 0.05


def test_a_lasting_change_becomes_the_new_normal() -> None:
    rng = random.Random(17)
    series = [span_window(i, rng, poisson(rng, 100), 0.0, 40.0) for i in range(30)]
    # Traffic grows fivefold for good (a launch): reported while new, learned once it lasted.
    series += [span_window(i, rng, poisson(rng, 500), 0.0, 40.0) for i in range(30, 150)]
    state = ServiceState("default", "checkout", "spans")
    found = [a for a in run(series, state) if a.kind == "request_rate"]
    assert len(found) > CFG.adapt_after_windows
    assert max(a.window_start for a in found) < iso_from_us(100 * W)
    assert state.metrics["requests_per_second"].baseline.mean > 450
