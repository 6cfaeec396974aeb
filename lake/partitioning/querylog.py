"""What queries do with a table's columns: filters, lookups, grouping and latency (pure logic).

The query daemon logs every query it runs. This module turns logged queries into a
:class:`Workload` per table: how many queries filter on each column, how many of those filters
are equality lookups (``trace_id = '...'``, ``service_name IN (...)``) or ranges (time windows),
how many group on it, and how long the queries took. The SQL analysis is a small tokenizer, not
a parser: it only needs to know which known column names appear in which clause, and with which
comparison, which is robust to the rest of DuckDB's SQL dialect.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

#: How a column is filtered on.
EQUALITY = "equality"
RANGE = "range"
OTHER = "other"

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op><=|>=|<>|!=|==|::|[=<>(),.;*+\-/%|\[\]{}:])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_CLAUSE_KEYWORDS = {
    "select": "select",
    "from": "from",
    "join": "from",
    "where": "where",
    "on": "where",
    "having": "where",
    "qualify": "where",
    "order": "order",
    "limit": "other",
    "offset": "other",
    "window": "other",
    "union": "other",
    "except": "other",
    "intersect": "other",
}
_FILTER_CLAUSES = {"where"}


@dataclass(frozen=True)
class QueryRecord:
    """One logged query: when, what SQL, how long, and whether it succeeded."""

    sql: str
    elapsed_ms: float = 0.0
    #: Seconds since the epoch (UTC) when the query ran.
    at: float = 0.0
    ok: bool = True
    tenant: str = ""
    #: Tables the query read, when the logger knew them (else they are read from the SQL).
    tables: tuple[str, ...] = ()
    #: (table, seconds): the width of the time window the query selected in each table, where
    #: the query daemon saw it bounded.
    time_windows: tuple[tuple[str, float], ...] = ()
    #: How many queries this record stands for (a sampled log keeps one line for several).
    weight: int = 1


@dataclass(frozen=True)
class SqlUsage:
    """Tables a statement reads and what it does with known columns."""

    tables: frozenset[str]
    #: column -> the kinds of comparison seen on it (EQUALITY, RANGE, OTHER)
    filters: Mapping[str, frozenset[str]]
    grouped: frozenset[str]


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str

    @property
    def lower(self) -> str:
        return self.text.lower()


def _tokens(sql: str) -> list[_Token]:
    out: list[_Token] = []
    for match in _TOKEN_RE.finditer(sql):
        kind = match.lastgroup or "other"
        if kind == "space":
            continue
        text = match.group()
        if kind == "quoted":
            kind, text = "word", text[1:-1].replace('""', '"')
        out.append(_Token(kind, text))
    return out


def _comparison_after(tokens: list[_Token], i: int) -> str:
    """Kind of comparison following the column at position ``i`` (skipping casts like ::TEXT)."""
    j = i + 1
    while j + 1 < len(tokens) and tokens[j].text == "::":
        j += 2
    nxt = tokens[j].lower if j < len(tokens) else ""
    if nxt in {"=", "=="}:
        return EQUALITY
    if nxt == "in":
        return EQUALITY
    if nxt in {"<", ">", "<=", ">=", "between"}:
        return RANGE
    if nxt == "not" and j + 1 < len(tokens) and tokens[j + 1].lower == "between":
        return RANGE
    return OTHER


def _comparison_before(tokens: list[_Token], i: int) -> str | None:
    """Kind of comparison for ``<literal> <op> column``, if the column is on the right."""
    if i < 2:
        return None
    op, lhs = tokens[i - 1].lower, tokens[i - 2]
    if lhs.kind not in {"string", "number"}:
        return None
    if op in {"=", "=="}:
        return EQUALITY
    if op in {"<", ">", "<=", ">="}:
        return RANGE
    return None


def analyze_sql(sql: str, columns: Collection[str]) -> SqlUsage:
    """Find the tables a statement reads and how it filters and groups on known ``columns``."""
    known = {c.lower(): c for c in columns}
    tokens = _tokens(sql)
    tables: set[str] = set()
    filters: dict[str, set[str]] = {}
    grouped: set[str] = set()
    clause = "select"
    stack: list[str] = []
    for i, tok in enumerate(tokens):
        low = tok.lower
        if tok.kind == "op" and tok.text == "(":
            stack.append(clause)
            continue
        if tok.kind == "op" and tok.text == ")":
            clause = stack.pop() if stack else clause
            continue
        if tok.kind != "word":
            continue
        if low == "group" and i + 1 < len(tokens) and tokens[i + 1].lower == "by":
            clause = "group"
            continue
        if low in _CLAUSE_KEYWORDS and not (i > 0 and tokens[i - 1].text == "."):
            clause = _CLAUSE_KEYWORDS[low]
            continue
        # A qualified name (s.trace_id, db.spans) is judged by its last part.
        if i + 1 < len(tokens) and tokens[i + 1].text == "." and i + 2 < len(tokens):
            continue
        if clause == "from":
            prev = tokens[i - 1].lower if i > 0 else ""
            if prev in {"from", "join", "."} or (prev == "," and tokens[i - 2].kind == "word"):
                tables.add(low)
            continue
        column = known.get(low)
        if column is None or (i + 1 < len(tokens) and tokens[i + 1].text == "("):
            continue
        if clause in _FILTER_CLAUSES:
            start = i
            while start >= 2 and tokens[start - 1].text == "." and tokens[start - 2].kind == "word":
                start -= 2
            kind = _comparison_before(tokens, start) or _comparison_after(tokens, i)
            filters.setdefault(column, set()).add(kind)
        elif clause == "group":
            grouped.add(column)
    return SqlUsage(
        frozenset(tables), {c: frozenset(k) for c, k in filters.items()}, frozenset(grouped)
    )


@dataclass(frozen=True)
class ColumnUsage:
    """How the queries of a workload use one column."""

    column: str
    filtered: int = 0
    equality: int = 0
    range: int = 0
    grouped: int = 0
    #: Mean latency of the queries that filter on this column.
    mean_filtered_ms: float = 0.0


@dataclass(frozen=True)
class QueryShape:
    """Which columns one query compares by value and by range: what a layout can prune by."""

    equality: frozenset[str] = frozenset()
    range: frozenset[str] = frozenset()
    #: Width of the time window, rounded up to one of WINDOW_WIDTHS; None when not known.
    window_seconds: float | None = None


#: Time window widths a query's window is rounded up to, so a workload has few shapes: a
#: minute, 5 and 15 minutes, an hour, 6 hours, a day, a week, 30 days.
WINDOW_WIDTHS = (60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 604800.0, 2592000.0)


def window_width(seconds: float | None) -> float | None:
    """``seconds`` rounded up to the next of WINDOW_WIDTHS (the widest one beyond it)."""
    if seconds is None:
        return None
    return next((w for w in WINDOW_WIDTHS if seconds <= w), WINDOW_WIDTHS[-1])


@dataclass(frozen=True)
class Workload:
    """Column usage and latency of the queries that read one table."""

    table: str
    queries: int = 0
    columns: Mapping[str, ColumnUsage] = field(default_factory=dict)
    mean_ms: float = 0.0
    p95_ms: float = 0.0
    #: How many queries had each shape (a query without filters has the empty shape).
    shapes: Mapping[QueryShape, int] = field(default_factory=dict)

    def usage(self, column: str) -> ColumnUsage:
        return self.columns.get(column, ColumnUsage(column))

    def share(self, count: int) -> float:
        """Fraction of this workload's queries that ``count`` queries represent."""
        return count / self.queries if self.queries else 0.0


def summarize(
    records: Iterable[QueryRecord], table: str, columns: Collection[str], since: float = 0.0
) -> Workload:
    """Usage of ``table``'s ``columns`` by the successful queries at or after ``since``."""
    counts: dict[str, dict[str, int]] = {}
    latency_sums: dict[str, float] = {}
    latencies: list[tuple[float, int]] = []  # (ms, weight)
    shapes: dict[QueryShape, int] = {}
    queries = 0
    wanted = table.lower()
    for record in records:
        if not record.ok or record.at < since:
            continue
        usage = analyze_sql(record.sql, columns)
        tables = {t.lower().rsplit(".", 1)[-1] for t in record.tables} or usage.tables
        if wanted not in tables:
            continue
        weight = max(1, record.weight)
        latencies.append((record.elapsed_ms, weight))
        ranges = frozenset(c for c, kinds in usage.filters.items() if RANGE in kinds)
        windows = {t.lower().rsplit(".", 1)[-1]: w for t, w in record.time_windows}
        shape = QueryShape(
            frozenset(c for c, kinds in usage.filters.items() if EQUALITY in kinds),
            ranges,
            window_width(windows.get(wanted)) if ranges else None,
        )
        queries += weight
        shapes[shape] = shapes.get(shape, 0) + weight
        for column, kinds in usage.filters.items():
            c = counts.setdefault(column, {})
            c["filtered"] = c.get("filtered", 0) + weight
            for kind in (EQUALITY, RANGE):
                if kind in kinds:
                    c[kind] = c.get(kind, 0) + weight
            latency_sums[column] = latency_sums.get(column, 0.0) + record.elapsed_ms * weight
        for column in usage.grouped:
            c = counts.setdefault(column, {})
            c["grouped"] = c.get("grouped", 0) + weight
    usages = {
        column: ColumnUsage(
            column,
            filtered=c.get("filtered", 0),
            equality=c.get(EQUALITY, 0),
            range=c.get(RANGE, 0),
            grouped=c.get("grouped", 0),
            mean_filtered_ms=(latency_sums.get(column, 0.0) / c["filtered"])
            if c.get("filtered")
            else 0.0,
        )
        for column, c in counts.items()
    }
    latencies.sort()
    total_ms = sum(ms * w for ms, w in latencies)
    p95_ms, below = 0.0, 0
    for ms, w in latencies:  # the smallest latency at or above 95 % of the weight
        below += w
        p95_ms = ms
        if below > 0.95 * queries:
            break
    return Workload(
        table=table,
        queries=queries,
        columns=usages,
        mean_ms=total_ms / queries if queries else 0.0,
        p95_ms=p95_ms,
        shapes=shapes,
    )
