"""What tenants ask: one record per query, kept as JSON lines for adaptive partitioning to read.

Records name the tables a query read and the columns it filtered and grouped on, taken from
DuckDB's serialized syntax tree (see :mod:`queryd.guard`). Map lookups are recorded with their
key, ``attributes['http.route']``, because those are the candidates for promoted columns.

Layout: ``<data>/querylog/<tenant>/<YYYY-MM-DD>.jsonl`` (UTC days), one JSON object a line.
The log is bounded by age: whole day files that end before the look-back of their only reader,
the layout policy (``settings.lake.layout_querylog_seconds``), are deleted as the log is written.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from emberlake.settings import Settings

_MAP_LOOKUPS = {"ARRAY_EXTRACT", "map_extract", "element_at", "map_extract_value"}
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class QueryRecord:
    """One query as the log keeps it."""

    tenant: str
    sql: str
    ok: bool
    elapsed_ms: float
    rows: int = 0
    tables: list[str] = field(default_factory=list)
    filter_columns: list[str] = field(default_factory=list)
    group_by_columns: list[str] = field(default_factory=list)
    #: Table -> width in seconds of the time window the query selected (bounded ones only).
    time_windows: dict[str, float] = field(default_factory=dict)
    #: Error code when not ok ("rejected", "timeout", ...).
    error: str | None = None
    #: When the query ran, seconds since the epoch (UTC).
    at: float = field(default_factory=time.time)
    #: How many queries this line stands for: 1, or more once the day's log is sampled.
    weight: int = 1

    @property
    def timestamp(self) -> str:
        """``at`` as ISO 8601 text (UTC, milliseconds)."""
        when = dt.datetime.fromtimestamp(self.at, dt.UTC)
        return when.isoformat(timespec="milliseconds")

    def to_json(self) -> str:
        """One log line: the fields, plus ``timestamp`` for people reading the file."""
        return json.dumps({**asdict(self), "timestamp": self.timestamp}, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> QueryRecord:
        data = json.loads(line)
        data.pop("timestamp", None)
        return cls(**data)


class QueryLog(Protocol):
    """Where query records go."""

    def record(self, entry: QueryRecord) -> None: ...


def sample_stride(size: int, day_bytes: int) -> int:
    """Keep one record in this many, for a day file of ``size`` bytes (0: keep none).

    Every record until the file holds ``day_bytes``; then one in 2, 4, 8, ... as each further
    eighth of ``day_bytes`` fills, so a busy day's file grows with the logarithm of its
    queries; none once it holds twice ``day_bytes``.
    """
    if size < day_bytes:
        return 1
    if size >= 2 * day_bytes:
        return 0
    return 2 ** (1 + (size - day_bytes) * 8 // day_bytes)


class JsonLinesQueryLog:
    """Appends records to one JSON-lines file per tenant and UTC day.

    With ``keep_seconds``, the first record logged on each UTC day (per process) deletes every
    tenant's day files whose records are all older than ``keep_seconds`` before now; readers
    looking back at most that far see everything they would have seen without pruning. Tenants
    that stopped querying are pruned too, so the whole log stays bounded.

    With ``day_bytes``, a tenant's day is logged in full up to that size and sampled beyond it
    (:func:`sample_stride`); a kept line's ``weight`` says how many queries it stands for, so
    the layout policy still sees the day's mix of queries in the right proportions.
    """

    def __init__(
        self, root: Path, keep_seconds: float | None = None, day_bytes: int | None = None
    ) -> None:
        self.root = root
        self.keep_seconds = keep_seconds
        self.day_bytes = day_bytes
        self._lock = threading.Lock()
        #: The UTC day old files were last pruned on.
        self._pruned_on: str | None = None
        #: Day file -> records not yet logged since the last kept one (sampling).
        self._skipped: dict[Path, int] = {}
        self._day = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> JsonLinesQueryLog:
        """The daemon's log, kept as long as the layout policy looks back."""
        return cls(
            settings.data_path / "querylog",
            settings.lake.layout_querylog_seconds,
            settings.queryd.querylog_day_bytes,
        )

    def record(self, entry: QueryRecord) -> None:
        day = entry.timestamp[:10]
        folder = self.root / entry.tenant
        path = folder / f"{day}.jsonl"
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            if self.day_bytes is not None:
                if self._day != day:  # counts of days gone by are of no more use
                    self._skipped.clear()
                    self._day = day
                stride = sample_stride(path.stat().st_size if path.exists() else 0, self.day_bytes)
                seen = self._skipped.get(path, 0) + 1
                if stride == 0 or seen < stride:
                    self._skipped[path] = seen
                    return
                self._skipped.pop(path, None)
                entry = replace(entry, weight=seen)
            with path.open("a", encoding="utf-8") as out:
                out.write(entry.to_json() + "\n")
            if self.keep_seconds is not None:
                today = dt.datetime.now(dt.UTC).date().isoformat()
                if self._pruned_on != today:
                    self._pruned_on = today
                    self.prune()

    def prune(self, now: float | None = None) -> list[Path]:
        """Delete day files (of every tenant) that end before ``now - keep_seconds``; return
        them. Files not named after a day are left alone."""
        if self.keep_seconds is None:
            return []
        cutoff = (now if now is not None else time.time()) - self.keep_seconds
        removed = []
        for path in sorted(self.root.glob("*/*.jsonl")):
            ends = _day_end(path.stem)
            if ends is not None and ends <= cutoff:
                # Another daemon sharing the data directory may have removed it first.
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def entries(self, tenant: str) -> Iterator[QueryRecord]:
        """Every record kept for the tenant, oldest day first."""
        for path in sorted((self.root / tenant).glob("*.jsonl")):
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    if line.strip():
                        yield QueryRecord.from_json(line)


def _day_end(name: str) -> float | None:
    """End of the UTC day a file is named after (epoch seconds), None for other names."""
    try:
        day = dt.datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return (day + _DAY).timestamp()


def query_columns(tree: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(filter columns, group-by columns) of every SELECT in a serialized syntax tree."""
    filters: list[str] = []
    groups: list[str] = []
    for node in _dicts(tree):
        if node.get("type") != "SELECT_NODE":
            continue
        _extend(filters, _columns(node.get("where_clause")))
        select_list = node.get("select_list") or []
        aliases = {str(e.get("alias")).lower(): e for e in select_list if e.get("alias")}
        for expr in node.get("group_expressions") or []:
            target = _resolve(expr, select_list, aliases)
            _extend(groups, _columns(target))
    return filters, groups


def _resolve(expr: Mapping[str, Any], select_list: list[Any], aliases: dict[str, Any]) -> Any:
    """GROUP BY 1 and GROUP BY alias mean an expression of the select list."""
    if expr.get("class") == "CONSTANT":
        literal = expr.get("literal") or {}
        text = str(literal.get("text", ""))
        if text.isdigit() and 0 < int(text) <= len(select_list):
            return select_list[int(text) - 1]
    if expr.get("class") == "COLUMN_REF" and len(expr.get("column_names") or []) == 1:
        name = str(expr["column_names"][0]).lower()
        if name in aliases:
            return aliases[name]
    return expr


def _columns(expr: Any) -> list[str]:
    out: list[str] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not isinstance(node, Mapping):
            continue
        lookup = _map_lookup(node)
        if lookup:
            _extend(out, [lookup])
            continue
        if node.get("class") == "COLUMN_REF":
            _extend(out, [str(node["column_names"][-1])])
            continue
        if node.get("class") == "SUBQUERY":
            # `col IN (SELECT ...)` filters col; the subquery's own SELECT is visited on its own.
            stack.append(node.get("child"))
            continue
        stack.extend(reversed(list(node.values())))
    return out


def _map_lookup(node: Mapping[str, Any]) -> str | None:
    """``attributes['k']`` for a lookup of a constant key in a column, else None."""
    name = node.get("type") if node.get("class") == "OPERATOR" else node.get("function_name")
    if name not in _MAP_LOOKUPS:
        return None
    args = node.get("children") or [a.get("expression") for a in node.get("arguments") or []]
    if len(args) != 2 or not all(isinstance(a, Mapping) for a in args):
        return None
    column, key = args
    literal = key.get("literal") or {}
    if column.get("class") != "COLUMN_REF" or literal.get("kind") != "STRING":
        return None
    text = str(literal["text"]).replace("'", "''")
    return f"{column['column_names'][-1]}['{text}']"


def _extend(target: list[str], items: list[str]) -> None:
    for item in items:
        if item not in target:
            target.append(item)


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
