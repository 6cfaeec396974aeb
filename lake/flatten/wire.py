"""Lean mirrors of the OTLP export messages, for decoding at flatten speed.

With the upb protobuf runtime every access to a sub-message builds a Python wrapper, and
attributes are the bulk of a span: reading one ``KeyValue`` through the official classes costs
about 1.4 us. The mirrors below are built at import time from the official descriptors, with the
same field numbers, but declare the small leaf messages (``KeyValue``, ``AnyValue``, ``Resource``,
``InstrumentationScope``, span ``Status``/``Event``/``Link``, ``Exemplar``) as ``bytes``. A
length-delimited sub-message and a bytes field are the same on the wire, so a mirror parses any
valid request; the flatteners then decode each distinct leaf once (see
:class:`lake.flatten.common.LeafCache`) and look repeats up by their bytes. Enum fields become
plain ``int32`` (same varint encoding), so unknown enum values survive as numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

#: Messages decoded lazily from their bytes instead of being walked by the mirror.
OPAQUE = frozenset(
    {
        "opentelemetry.proto.common.v1.KeyValue",
        "opentelemetry.proto.common.v1.AnyValue",
        "opentelemetry.proto.common.v1.InstrumentationScope",
        "opentelemetry.proto.common.v1.EntityRef",
        "opentelemetry.proto.resource.v1.Resource",
        "opentelemetry.proto.trace.v1.Status",
        "opentelemetry.proto.trace.v1.Span.Event",
        "opentelemetry.proto.trace.v1.Span.Link",
        "opentelemetry.proto.metrics.v1.Exemplar",
    }
)

_F = descriptor_pb2.FieldDescriptorProto


def _local_name(full_name: str) -> str:
    return full_name.replace(".", "_")


def _reachable(root: Descriptor) -> list[Descriptor]:
    """Message types reachable from ``root`` through non-opaque message fields."""
    seen: dict[str, Descriptor] = {}
    stack = [root]
    while stack:
        message = stack.pop()
        if message.full_name in seen:
            continue
        seen[message.full_name] = message
        for f in message.fields:
            if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name not in OPAQUE:
                stack.append(f.message_type)
    return list(seen.values())


def mirror(
    root: Descriptor,
    package: str,
    singular: frozenset[str] = frozenset(),
    only: Mapping[str, frozenset[str]] | None = None,
    repeated: frozenset[str] = frozenset(),
) -> Any:
    """A message class wire-compatible with ``root`` whose opaque leaves are ``bytes``.

    Repeated fields named in ``singular`` (``message.full_name`` + "." + field name) are
    declared singular: reading one then costs a plain attribute access instead of building a
    container, and gives the last element (protobuf keeps the last value of a repeated
    singular field) or empty, which is enough to tell whether there are any.

    ``only`` maps a message's full name to the fields to declare; its other fields are left
    out and parsed as unknown fields (kept as raw bytes, never turned into values).

    Every field of a message named in ``repeated`` is declared repeated. Declared singular,
    a repeated field of that message type then parses as *one* message: the wire format merges
    the occurrences of a singular sub-message, concatenating their repeated fields, so each
    field reads back as a column over all the elements (see :data:`ColumnarTraceRequest`).
    """
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}.proto", package=package, syntax="proto3"
    )
    for message in _reachable(root):
        proto = descriptor_pb2.DescriptorProto()
        message.CopyToProto(proto)
        proto.name = _local_name(message.full_name)
        del proto.nested_type[:]
        del proto.enum_type[:]
        if only is not None and message.full_name in only:
            kept = [f for f in proto.field if f.name in only[message.full_name]]
            del proto.field[:]
            proto.field.extend(kept)
        for f in proto.field:
            if f"{message.full_name}.{f.name}" in singular:
                f.label = _F.LABEL_OPTIONAL
            if message.full_name in repeated:
                f.label = _F.LABEL_REPEATED
            if f.type == _F.TYPE_MESSAGE:
                target = f.type_name.lstrip(".")
                if target in OPAQUE:
                    f.type = _F.TYPE_BYTES
                    f.ClearField("type_name")
                else:
                    f.type_name = f".{package}.{_local_name(target)}"
            elif f.type == _F.TYPE_ENUM:
                f.type = _F.TYPE_INT32
                f.ClearField("type_name")
        file.message_type.append(proto)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{package}.{_local_name(root.full_name)}")
    )


#: Span events and links are rare: the hot mirror only says whether a span has any, and the
#: full mirror (same bytes) is parsed for the requests that do.
LeanTraceRequest = mirror(
    ExportTraceServiceRequest.DESCRIPTOR,
    "emberlake.lean.trace",
    singular=frozenset(
        {"opentelemetry.proto.trace.v1.Span.events", "opentelemetry.proto.trace.v1.Span.links"}
    ),
)
#: Span fields as columns: ``scope_spans.spans`` is one merged message whose fields each list
#: the value of every span that has that field set, in span order. A column as long as the
#: scope's span count holds every span's value (a canonical encoding writes a set field once
#: per span; the receiver re-encodes span requests that are not canonical, see
#: ``ingest.otlp_receiver.export.decode_export``); an empty one says no span has it; any other
#: length needs the per-span reads.
ColumnarTraceRequest = mirror(
    ExportTraceServiceRequest.DESCRIPTOR,
    "emberlake.columnar.trace",
    singular=frozenset({"opentelemetry.proto.trace.v1.ScopeSpans.spans"}),
    only={
        "opentelemetry.proto.trace.v1.ResourceSpans": frozenset({"scope_spans"}),
        "opentelemetry.proto.trace.v1.ScopeSpans": frozenset({"spans"}),
    },
    repeated=frozenset({"opentelemetry.proto.trace.v1.Span"}),
)
FullTraceRequest = mirror(ExportTraceServiceRequest.DESCRIPTOR, "emberlake.full.trace")
#: The spans' events and links only (same span positions as the lean mirror): about half the
#: cost of parsing the whole request again.
ExtrasTraceRequest = mirror(
    ExportTraceServiceRequest.DESCRIPTOR,
    "emberlake.extras.trace",
    only={
        "opentelemetry.proto.trace.v1.ResourceSpans": frozenset({"scope_spans"}),
        "opentelemetry.proto.trace.v1.ScopeSpans": frozenset({"spans"}),
        "opentelemetry.proto.trace.v1.Span": frozenset({"events", "links"}),
    },
)
LeanLogsRequest = mirror(ExportLogsServiceRequest.DESCRIPTOR, "emberlake.lean.logs")
#: Log record fields as columns, like :data:`ColumnarTraceRequest`. The receiver does not
#: re-encode log requests, so the flattener reads these columns only for a request whose lean
#: mirror re-encodes to exactly its own size (no field given twice in one record).
ColumnarLogsRequest = mirror(
    ExportLogsServiceRequest.DESCRIPTOR,
    "emberlake.columnar.logs",
    singular=frozenset({"opentelemetry.proto.logs.v1.ScopeLogs.log_records"}),
    only={
        "opentelemetry.proto.logs.v1.ResourceLogs": frozenset({"scope_logs"}),
        "opentelemetry.proto.logs.v1.ScopeLogs": frozenset({"log_records"}),
    },
    repeated=frozenset({"opentelemetry.proto.logs.v1.LogRecord"}),
)
LeanMetricsRequest = mirror(ExportMetricsServiceRequest.DESCRIPTOR, "emberlake.lean.metrics")
