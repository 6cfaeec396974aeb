"""Schema inference cost next to flattening: rows/s with and without promoted columns.

Times are CPU seconds of this process, best of several interleaved rounds. Builds serialized
OTLP trace requests (512 spans each, 20 record attributes per span of mixed
kinds and cardinalities, 8 resource attributes, 4 services) and measures, in one run:

- ``flatten``: the lake's span flattener alone (the baseline);
- ``flatten+kinds``: the same flattener recording each attribute leaf's OTLP kind next to its
  text and keeping its ids array (the change the flattener needs to feed inference, which then
  reads its interned entry table: each distinct value is parsed once);
- ``flatten+inference``: that, plus ``infer_batch`` (observe, decide, typed columns, column
  statistics) on record and resource attributes, in steady state (columns already promoted);
- ``flatten+map inference``: inference from the flattened map columns plus a kind per map entry
  (what a hook that only sees the Arrow rows can use);
- ``extract+inference``: the slow path that walks ``KeyValue`` protos itself, for comparison.

    python -m benchmarks.schema_inference_bench [--batches 10] [--requests 10] [--rounds 3]
        [--low-cardinality]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from lake.flatten.common import STRING_MAP, AttributeColumn, ResourceScope, parse, render
from lake.flatten.spans import SpanColumns
from lake.schema_inference import (
    Attributes,
    InferenceState,
    PromotionPolicy,
    extract,
    infer_batch,
    kind_code_of,
)
from lake.schema_inference.types import CODE_STRING, KIND_CODE

SPANS_PER_REQUEST = 512
_SCALARS = {name: KIND_CODE[name] for name in ("int_value", "double_value", "bool_value")}


def _value(rng: random.Random, i: int, field: int) -> AnyValue:
    """One of 20 attribute shapes, mixing kinds and cardinalities."""
    if field == 0:
        return AnyValue(string_value=rng.choice(["GET", "POST", "PUT", "DELETE"]))
    if field == 1:
        return AnyValue(string_value=f"/api/v1/items/{{id}}/{rng.randint(0, 30)}")
    if field == 2:
        return AnyValue(int_value=rng.choice([200, 200, 200, 201, 404, 500]))
    if field == 3:
        return AnyValue(int_value=rng.randint(1024, 65535))
    if field == 4:
        return AnyValue(string_value=str(uuid.UUID(int=rng.getrandbits(128))))
    if field == 5:
        return AnyValue(string_value=f"user-{rng.randint(0, 1000)}")
    if field == 6:
        return AnyValue(bool_value=rng.random() < 0.3)
    if field == 7:
        return AnyValue(double_value=rng.random())
    if field == 8:
        return AnyValue(int_value=rng.randint(0, 10_000_000))
    if field == 9:
        return AnyValue(string_value=rng.choice(["postgresql", "redis", "mysql"]))
    if field == 10:
        return AnyValue(string_value=f"SELECT * FROM t{rng.randint(0, 100)} WHERE id = ?")
    if field == 11:
        return AnyValue(int_value=rng.randint(0, 3))
    if field == 12:
        return AnyValue(string_value=f"thread-{rng.randint(0, 50)}")
    if field == 13:
        return AnyValue(int_value=rng.randint(1, 2000))
    if field == 14:
        return AnyValue(string_value=f"handler_{rng.randint(0, 200)}")
    if field == 15:
        return AnyValue(string_value=rng.choice(["checkout", "cart", "payments"]))
    if field == 16:
        return AnyValue(bool_value=rng.random() < 0.01)
    if field == 17:
        return AnyValue(double_value=round(rng.uniform(0, 100), 2))
    if field == 18:
        # A key whose type drifts: mostly ints, some doubles.
        if i % 10 == 0:
            return AnyValue(double_value=rng.random() * 10)
        return AnyValue(int_value=rng.randint(0, 10))
    return AnyValue(string_value=rng.choice(["a", "b", "c", "d", "e", "f"]))


KEYS = [
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "net.peer.port",
    "request.id",
    "enduser.id",
    "cache.hit",
    "sample.ratio",
    "payload.size",
    "db.system",
    "db.statement",
    "retry.count",
    "thread.name",
    "code.lineno",
    "code.function",
    "feature.area",
    "error.flag",
    "price",
    "queue.depth",
    "variant",
]


def make_requests(count: int, seed: int = 7, low_cardinality: bool = False) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for r in range(count):
        service = f"svc-{r % 4}"
        resource = Resource(
            attributes=[
                KeyValue(key="service.name", value=AnyValue(string_value=service)),
                KeyValue(key="service.version", value=AnyValue(string_value="1.2.3")),
                KeyValue(key="host.name", value=AnyValue(string_value=f"host-{r % 3}")),
                KeyValue(key="k8s.pod.name", value=AnyValue(string_value=f"pod-{r % 7}")),
                KeyValue(key="deployment.environment", value=AnyValue(string_value="prod")),
                KeyValue(key="telemetry.sdk.name", value=AnyValue(string_value="opentelemetry")),
                KeyValue(key="telemetry.sdk.language", value=AnyValue(string_value="python")),
                KeyValue(key="process.pid", value=AnyValue(int_value=1000 + r % 5)),
            ]
        )
        spans = []
        for i in range(SPANS_PER_REQUEST):
            if low_cardinality:
                rng.seed(i % 40)  # 40 value patterns: the flattener's leaf cache mostly hits
            attributes = [KeyValue(key=key, value=_value(rng, i, f)) for f, key in enumerate(KEYS)]
            spans.append(
                Span(
                    trace_id=os.urandom(16),
                    span_id=os.urandom(8),
                    name=f"op-{i % 12}",
                    kind=Span.SPAN_KIND_SERVER,
                    start_time_unix_nano=1_700_000_000_000_000_000 + i,
                    end_time_unix_nano=1_700_000_000_000_500_000 + i,
                    attributes=attributes,
                )
            )
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
        )
        out.append(request.SerializeToString())
    return out


def _decode_with_kind(data: bytes) -> tuple[str, str | None, int]:
    # One WhichOneof for both the text and the kind, as the flattener's decoder would do it.
    kv = parse(KeyValue, data)
    value = kv.value
    which = value.WhichOneof("value")
    if which == "string_value":
        return (kv.key, value.string_value, CODE_STRING)
    if which in _SCALARS:
        return (kv.key, str(getattr(value, which)), _SCALARS[which])
    return (kv.key, render(value), KIND_CODE[which or ""])


class KindedAttributeColumn(AttributeColumn):
    """The flattener's interned attribute column, also keeping each leaf's kind code."""

    def __init__(self) -> None:
        super().__init__()
        self.decode = _decode_with_kind
        self.entries = [("", None, 0)]
        self.id_array = pa.array([], pa.int32())
        self.table: tuple[pa.Array, pa.Array, Any] = (pa.array([]), pa.array([]), ())

    def to_arrow(self) -> pa.MapArray:
        # As the flattener's, but keeping the entry table and ids for inference.
        keys, texts, kinds = zip(*self.entries, strict=True)
        self.table = (pa.array(keys, pa.string()), pa.array(texts, pa.string()), kinds)
        self.id_array = pa.array(self.ids, pa.int32())
        return pa.MapArray.from_arrays(
            pa.array(self.offsets, pa.int32()),
            self.table[0].take(self.id_array),
            self.table[1].take(self.id_array),
            type=STRING_MAP,
        )

    def attributes(self) -> Attributes:
        """The batch's record attributes in interned form: entry table plus ids."""
        keys, texts, kinds = self.table
        return Attributes.from_interned(self.offsets, self.id_array, keys, texts, kinds)


class KindedResourceScope(ResourceScope):
    """The flattener's per-scope resource columns, also keeping each attribute's kind code."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[int] = []
        self._current_kinds: list[int] = []

    def start_resource(self, data: bytes) -> None:
        super().start_resource(data)
        self._current_kinds = [kind_code_of(kv.value) for kv in parse(Resource, data).attributes]

    def start_scope(self, data: bytes) -> int:
        self.kinds.extend(self._current_kinds)
        return super().start_scope(data)

    def attributes(self) -> Attributes:
        """Resource attributes per row: built once per scope, expanded by the row index."""
        per_scope = Attributes.from_lists(
            self.resource.offsets, self.resource.keys, self.resource.values, self.kinds
        )
        return per_scope.take(self.index)


class KindedSpanColumns(SpanColumns):
    """Span flattening that also hands over attribute kinds."""

    def __init__(self) -> None:
        super().__init__()
        self.attributes = KindedAttributeColumn()
        self.maps = [self.attributes]
        self.rs = KindedResourceScope()


def resource_kinds(columns: KindedSpanColumns) -> pa.Array:
    """Kind of every entry of the per-row resource map (per-scope kinds repeated by row)."""
    rs = columns.rs
    per_scope = Attributes.from_lists(
        rs.resource.offsets, rs.resource.keys, rs.resource.values, rs.kinds
    )
    return pa.array(per_scope.take(rs.index).map_kinds(), pa.int8())


def resource_attributes(requests: list[bytes], n_rows: int) -> Attributes:
    """Resource attributes per row by walking the protos (the slow path)."""
    lists: list[Any] = []
    repeats: list[int] = []
    for data in requests:
        request = ExportTraceServiceRequest.FromString(data)
        for rs in request.resource_spans:
            lists.append(rs.resource.attributes)
            repeats.append(sum(len(ss.spans) for ss in rs.scope_spans))
    attrs = extract(lists, repeats)
    assert attrs.n_rows == n_rows
    return attrs


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    # CPU time of this process: other processes on a busy machine barely disturb it.
    started = time.process_time()
    result = fn()
    return time.process_time() - started, result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--requests", type=int, default=10, help="requests per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--low-cardinality", action="store_true", help="attribute values from a few dozen each"
    )
    args = parser.parse_args(argv)

    batches = [
        make_requests(args.requests, seed=b, low_cardinality=args.low_cardinality)
        for b in range(args.batches)
    ]
    rows = sum(len(b) for b in batches) * SPANS_PER_REQUEST
    policy = PromotionPolicy(min_batches=1)

    def flatten(columns_type: type[SpanColumns], requests: list[bytes]) -> Any:
        columns = columns_type()
        for data in requests:
            columns.add(data)
        return columns, columns.to_arrow()

    # Warm-up, and the columns promoted once, so the timed runs are steady state.
    state = InferenceState()
    for requests in batches[:2]:
        columns, table = flatten(KindedSpanColumns, requests)
        record = columns.attributes.attributes()
        batch = {"record": record, "resource": columns.rs.attributes()}
        infer_batch(state, policy, batch, 1)
    print(f"promoted columns: {len(state.columns)} of {len(KEYS) + 8} keys")

    slow_state = InferenceState()
    map_state = InferenceState()

    def measure(b: int, requests: list[bytes]) -> dict[str, float]:
        """Every mode once on one batch, back to back, so noise hits them alike."""
        times = {"flatten": _timed(lambda: flatten(SpanColumns, requests))[0]}
        times["flatten+kinds"], (columns, table) = _timed(
            lambda: flatten(KindedSpanColumns, requests)
        )

        def infer() -> Any:
            record = columns.attributes.attributes()
            batch = {"record": record, "resource": columns.rs.attributes()}
            return infer_batch(state, policy, batch, 10 + b)

        times["inference"] = _timed(infer)[0]

        def infer_from_map() -> Any:
            # The map column plus a kind per map entry (what a rows-only hook would get).
            kinds = pa.array(columns.attributes.table[2], pa.int8()).take(
                columns.attributes.id_array
            )
            record = Attributes.from_map(table["attributes"], kinds)
            resource = Attributes.from_map(table["resource_attributes"], resource_kinds(columns))
            return infer_batch(map_state, policy, {"record": record, "resource": resource}, 10 + b)

        times["map inference"] = _timed(infer_from_map)[0]

        def slow() -> Any:
            record_lists = []
            for data in requests:
                for rs in ExportTraceServiceRequest.FromString(data).resource_spans:
                    for ss in rs.scope_spans:
                        record_lists.extend(span.attributes for span in ss.spans)
            record = extract(record_lists)
            batch = {"record": record, "resource": resource_attributes(requests, record.n_rows)}
            return infer_batch(slow_state, policy, batch, 10 + b)

        times["extract+inference"] = _timed(slow)[0]
        return times

    # Best of --rounds per batch and mode, summed over batches.
    best: list[dict[str, float]] = [{} for _ in batches]
    for _ in range(args.rounds):
        for b, requests in enumerate(batches):
            for mode, seconds in measure(b, requests).items():
                best[b][mode] = min(best[b].get(mode, float("inf")), seconds)
    total = {mode: sum(t[mode] for t in best) for mode in best[0]}
    base, infer = total["flatten"], total["inference"]
    results = {
        "flatten": base,
        "flatten+kinds": total["flatten+kinds"],
        "flatten+inference": total["flatten+kinds"] + infer,
        "flatten+map inference": total["flatten+kinds"] + total["map inference"],
        "extract+inference": base + total["extract+inference"],
    }

    print(f"{rows} spans in {args.batches} batches, 20 record + 8 resource attributes per span")
    for name, seconds in results.items():
        ratio = seconds / base
        print(f"{name:>20}: {rows / seconds:>10,.0f} rows/s   {ratio:5.2f}x flatten time")
    print(f"{'inference alone':>20}: {rows / infer:>10,.0f} rows/s")
    overhead = (results["flatten+inference"] - base) / base
    print(f"promotion adds {overhead:.0%} to flatten time (goal: < 30%)")


if __name__ == "__main__":
    main(sys.argv[1:])
