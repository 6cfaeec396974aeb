"""``emberlake demo``: a small shop's telemetry, sent through the real OpenTelemetry SDK.

Four services (frontend -> checkout -> inventory and payments) each get their own tracer, logger
and meter providers with OTLP/gRPC exporters, as four separate processes would. The shop model
lives in :mod:`ingest.demo.shop`, the SDK wiring in :mod:`ingest.demo.telemetry` and the loop
that paces requests in :mod:`ingest.demo.runner`.
"""

from __future__ import annotations

from ingest.demo.runner import run_demo, wait_for_receiver
from ingest.demo.shop import SERVICES, Shop
from ingest.demo.telemetry import DemoReport, ServiceTelemetry

__all__ = ["SERVICES", "DemoReport", "ServiceTelemetry", "Shop", "run_demo", "wait_for_receiver"]
