"""Streaming anomaly detection, as pure logic: decoding, windows, baselines, rules, engine.

Nothing here talks to Kafka or a database; ``agents.faust_app`` runs the engine on the stream and
``agents.detector_state`` persists it.
"""

from agents.detection.baseline import EwmaBaseline
from agents.detection.detector import DetectorConfig, ServiceState, evaluate_window
from agents.detection.engine import Changes, DetectionEngine
from agents.detection.signature import ErrorSignature, error_signature, message_template
from agents.detection.telemetry import LogFact, SpanFact, decode_logs, decode_spans
from agents.detection.windows import LatencyHistogram, WindowStats

__all__ = [
    "Changes",
    "DetectionEngine",
    "DetectorConfig",
    "ErrorSignature",
    "EwmaBaseline",
    "LatencyHistogram",
    "LogFact",
    "ServiceState",
    "SpanFact",
    "WindowStats",
    "decode_logs",
    "decode_spans",
    "error_signature",
    "evaluate_window",
    "message_template",
]
