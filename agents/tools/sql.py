"""The ``sql`` tool: read-only SQL over the tenant's lake through the query daemon.

Given ``describe`` it lists a table's columns with their types and provenance (the Iceberg field
docs: "attribute http.route", "OTLP span name", ...), so a model can choose columns before it
writes a query. Results keep only what answers the question (columns, rows, counts); timings are
left out so that the same query over the same data always gives the same transcript.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.llm.base import ToolSpec
from emberlake.errors import QuerydUnavailable, QueryError, ToolUnavailable
from queryd.client import QueryClient

from .base import ToolOutput

SPEC = ToolSpec(
    name="sql",
    description=(
        "Run one read-only SQL query (DuckDB dialect) over this tenant's telemetry lake: tables"
        " spans, logs and metrics. Timestamps are TIMESTAMPTZ in UTC (compare with TIMESTAMPTZ"
        " '2026-01-01 00:00:00+00'). Give `describe` instead of `sql` to see a table's columns,"
        " types and where each comes from. Results are cut at `max_rows` rows (default 200)."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "sql": {"type": "string", "description": "one SELECT statement"},
            "describe": {"type": "string", "description": "a table name: spans, logs or metrics"},
            "max_rows": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
    },
)

DEFAULT_ROWS = 200


class SqlTool:
    """Queries the lake as one tenant."""

    def __init__(self, client: QueryClient):
        self.client = client

    @property
    def spec(self) -> ToolSpec:
        return SPEC

    def needs_approval(self, arguments: Mapping[str, Any]) -> str | None:
        return None

    def run(self, arguments: Mapping[str, Any]) -> ToolOutput:
        try:
            if arguments.get("describe"):
                return ToolOutput.of(self._describe(str(arguments["describe"])))
            if not arguments.get("sql"):
                return ToolOutput.error("give either `sql` (a query) or `describe` (a table name)")
            limit = int(arguments.get("max_rows") or DEFAULT_ROWS)
            result = self.client.query(str(arguments["sql"]), max_rows=limit)
        except QuerydUnavailable as exc:
            raise ToolUnavailable(str(exc)) from None
        except QueryError as exc:
            return ToolOutput.error(f"{type(exc).__name__}: {exc}")
        return ToolOutput.of(
            {
                "columns": [c["name"] for c in result["columns"]],
                "rows": result["rows"],
                "row_count": result["row_count"],
                "truncated": bool(result.get("truncated")),
            }
        )

    def _describe(self, name: str) -> dict[str, Any]:
        table = self.client.table(name)
        return {
            "table": table.get("name", name),
            "row_count": table.get("row_count"),
            "columns": [
                {"name": c["name"], "type": c["type"], "doc": c.get("doc")}
                for c in table.get("columns", [])
            ],
        }
