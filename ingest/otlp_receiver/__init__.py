"""The OTLP receiver: OTLP/gRPC and OTLP/HTTP in, one Kafka record per tenant and service out.

Pure parts (no network): :func:`decode_export` decodes, validates and splits a request;
:func:`kafka_records` turns the result into records per the shared Kafka contract. Servers:
:class:`Receiver` (async), :func:`serve` (until stopped) and :class:`ReceiverThread` (in a
background thread, for tests and tools).
"""

from ingest.otlp_receiver.export import (
    DecodedExport,
    ServiceBatch,
    decode_export,
    kafka_records,
    service_name,
    split_by_service,
)
from ingest.otlp_receiver.handler import ExportHandler, ReceiverStats, Sink
from ingest.otlp_receiver.otlp_json import parse_json, request_to_json
from ingest.otlp_receiver.receiver import Receiver, ReceiverThread, serve
from ingest.otlp_receiver.signals import LOGS, METRICS, OTLP_SIGNALS, TRACES, OtlpSignal

__all__ = [
    "LOGS",
    "METRICS",
    "OTLP_SIGNALS",
    "TRACES",
    "DecodedExport",
    "ExportHandler",
    "OtlpSignal",
    "Receiver",
    "ReceiverStats",
    "ReceiverThread",
    "ServiceBatch",
    "Sink",
    "decode_export",
    "kafka_records",
    "parse_json",
    "request_to_json",
    "serve",
    "service_name",
    "split_by_service",
]
