"""Skipping data files a query cannot need, from its WHERE clause (pure).

A query like ``SELECT ... FROM spans WHERE start_time >= now() - INTERVAL 1 HOUR`` needs only
the files whose ``start_time`` bounds (kept per file in the Iceberg manifests) overlap the
window, and ``... WHERE service_name = 'checkout'`` or ``trace_id IN ('...')`` only the files
whose partition values and column bounds may hold that value. This module finds such predicates
in DuckDB's serialized syntax tree: time windows (:func:`window_bounds`, decided file by file
here once the caller has evaluated the constant side such as ``now() - INTERVAL 1 HOUR``) and
equality with string literals (:func:`equality_filters`, which the caller evaluates against the
manifest entries with Iceberg's own partition and metrics evaluators).

Pruning must never change a result, so it is deliberately narrow: it applies only when the table
is named exactly once in the whole statement, directly as the FROM of a SELECT (no join there),
and only to comparisons that are top-level AND terms of that SELECT's WHERE, between the bare or
table-qualified column and an expression without column references or subqueries (for
equality: plain string literals). Anything else simply leaves every file in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Comparison types, and the same comparison with its two sides swapped.
_FLIPPED = {
    "COMPARE_GREATERTHAN": "COMPARE_LESSTHAN",
    "COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
    "COMPARE_LESSTHAN": "COMPARE_GREATERTHAN",
    "COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO",
    "COMPARE_EQUAL": "COMPARE_EQUAL",
}
#: Expression classes a constant side may be built from.
_CONSTANT_CLASSES = {"CONSTANT", "CAST", "FUNCTION", "OPERATOR", "TYPE"}
#: Functions whose value differs between evaluations: never used to prune.
_VOLATILE = {"random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "setseed", "nextval"}
#: Keywords DuckDB parses as column references when no column has the name.
CLOCK_WORDS = {
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "transaction_timestamp",
}


@dataclass(frozen=True)
class Bound:
    """One side of a window on a column: ``column >= value`` (low) or ``column <= value``."""

    column: str
    #: "low" or "high".
    side: str
    #: The constant expression, as a node of the serialized syntax tree.
    expr: Mapping[str, Any]
    #: ``>`` or ``<`` rather than ``>=`` or ``<=``.
    strict: bool = False


@dataclass(frozen=True)
class Window:
    """Inclusive range of a column's values (microseconds); None is unbounded."""

    low: int | None = None
    high: int | None = None

    def narrowed(self, side: str, value: int) -> Window:
        if side == "low":
            return Window(value if self.low is None else max(self.low, value), self.high)
        return Window(self.low, value if self.high is None else min(self.high, value))

    def width_seconds(self, newest: int | None) -> float | None:
        """The window's width; a window with only a lower bound ends at ``newest``, the newest
        value the data holds (microseconds), since that is as far as it reads."""
        if self.low is None:
            return None
        high = self.high if self.high is not None else newest
        if high is None:
            return None
        return max(0.0, (high - self.low) / 1_000_000)

    def overlaps(self, lower: int | None, upper: int | None) -> bool:
        """Whether a file whose values lie in [lower, upper] may hold rows in the window."""
        if self.low is not None and upper is not None and upper < self.low:
            return False
        return not (self.high is not None and lower is not None and lower > self.high)


@dataclass(frozen=True)
class Equality:
    """``column = 'value'`` or ``column IN ('a', 'b')``: the column holds one of ``values``."""

    column: str
    values: tuple[str, ...]


def _where_terms(tree: Mapping[str, Any], table: str) -> tuple[list[Mapping[str, Any]], set[str]]:
    """Top-level AND terms of the WHERE over ``table`` and the names the table goes by there;
    no terms when pruning is unsafe (see the module docs)."""
    table = table.lower()
    refs = [n for n in _dicts(tree) if _is_table(n, table)]
    if len(refs) != 1 or table in {name.lower() for name in _cte_names(tree)}:
        return [], set()
    node = next((n for n in _dicts(tree) if _select_over(n, refs[0])), None)
    if node is None or refs[0].get("sample") or node.get("sample"):
        return [], set()  # a sample draws from the rows read: fewer files, other rows
    names = {table, str(refs[0].get("alias") or "").lower()} - {""}
    return list(_and_terms(node.get("where_clause"))), names


def window_bounds(
    tree: Mapping[str, Any],
    table: str,
    columns: Collection[str],
    table_columns: Collection[str] = (),
) -> list[Bound]:
    """Bounds the statement puts on ``columns`` of ``table``; empty when pruning is unsafe.

    ``table_columns`` are all of the table's columns: a name among them is never taken for a
    clock keyword such as ``current_timestamp``.
    """
    wanted = {c.lower(): c for c in columns}
    clocks = CLOCK_WORDS - {c.lower() for c in (*table_columns, *columns)}
    terms, names = _where_terms(tree, table)
    bounds: list[Bound] = []
    for term in terms:
        bounds.extend(_term_bounds(term, names, wanted, clocks))
    return bounds


def equality_filters(
    tree: Mapping[str, Any], table: str, columns: Collection[str]
) -> list[Equality]:
    """Equality filters with string literals on ``columns`` (string columns) of ``table``.

    Only ``column = 'literal'`` (either side) and ``column IN ('literal', ...)``: a literal of
    another type or under a cast compares by DuckDB's casting rules, which the manifests' string
    bounds do not model.
    """
    wanted = {c.lower(): c for c in columns}
    terms, names = _where_terms(tree, table)
    out: list[Equality] = []
    for term in terms:
        kind = term.get("type")
        if kind == "COMPARE_EQUAL":
            left, right = term.get("left"), term.get("right")
            column = _column(left, names, wanted)
            if column is None:
                column, right = _column(right, names, wanted), left
            value = _string_literal(right)
            if column is not None and value is not None:
                out.append(Equality(column, (value,)))
        elif kind == "COMPARE_IN":
            children = term.get("children") or []
            column = _column(children[0], names, wanted) if children else None
            values = [_string_literal(c) for c in children[1:]]
            if column is not None and values and all(v is not None for v in values):
                out.append(Equality(column, tuple(v for v in values if v is not None)))
    return out


def _string_literal(node: Any) -> str | None:
    if not isinstance(node, Mapping) or node.get("class") != "CONSTANT":
        return None
    literal = node.get("literal")
    if not isinstance(literal, Mapping) or literal.get("kind") != "STRING":
        return None
    text = literal.get("text")
    return text if isinstance(text, str) else None


def _term_bounds(
    term: Mapping[str, Any], names: set[str], wanted: Mapping[str, str], clocks: set[str]
) -> list[Bound]:
    kind = term.get("type")
    if kind == "COMPARE_BETWEEN":
        column = _column(term.get("input"), names, wanted)
        lower, upper = term.get("lower"), term.get("upper")
        if column is None or not _constant(lower, clocks) or not _constant(upper, clocks):
            return []
        assert isinstance(lower, Mapping) and isinstance(upper, Mapping)
        return [Bound(column, "low", lower), Bound(column, "high", upper)]
    if kind not in _FLIPPED:
        return []
    left, right = term.get("left"), term.get("right")
    column = _column(left, names, wanted)
    if column is None:
        column, kind, right = _column(right, names, wanted), _FLIPPED[str(kind)], left
    if column is None or not _constant(right, clocks):
        return []
    assert isinstance(right, Mapping)
    if kind == "COMPARE_EQUAL":
        return [Bound(column, "low", right), Bound(column, "high", right)]
    side = "low" if kind.startswith("COMPARE_GREATER") else "high"
    return [Bound(column, side, right, strict=not kind.endswith("OREQUALTO"))]


def _column(node: Any, names: set[str], wanted: Mapping[str, str]) -> str | None:
    if not isinstance(node, Mapping) or node.get("class") != "COLUMN_REF":
        return None
    parts = [str(p).lower() for p in node.get("column_names") or []]
    if len(parts) == 2 and parts[0] in names:
        parts = parts[1:]
    return wanted.get(parts[0]) if len(parts) == 1 else None


def _constant(node: Any, clocks: set[str]) -> bool:
    """An expression of constants, casts, clock readings and deterministic functions."""
    if not isinstance(node, Mapping):
        return False
    for item in _dicts(node):
        cls = item.get("class")
        if cls == "COLUMN_REF":
            parts = [str(p).lower() for p in item.get("column_names") or []]
            if len(parts) == 1 and parts[0] in clocks:
                continue
            return False
        if cls is not None and cls not in _CONSTANT_CLASSES:
            return False
        if cls == "FUNCTION" and (
            item.get("schema")
            or item.get("catalog")
            or str(item.get("function_name")).lower() in _VOLATILE
        ):
            return False
    return True


def reads_clock(node: Mapping[str, Any]) -> bool:
    """Whether an expression's value depends on when it is evaluated (``now()``, ...)."""
    return any(item.get("class") in {"FUNCTION", "COLUMN_REF"} for item in _dicts(node))


def _and_terms(where: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(where, Mapping):
        return
    if where.get("type") == "CONJUNCTION_AND":
        for child in where.get("children") or []:
            yield from _and_terms(child)
    else:
        yield where


def _is_table(node: Mapping[str, Any], table: str) -> bool:
    return node.get("type") == "BASE_TABLE" and str(node.get("table_name")).lower() == table


def _select_over(node: Mapping[str, Any], ref: Mapping[str, Any]) -> bool:
    return node.get("type") == "SELECT_NODE" and node.get("from_table") is ref


def _cte_names(tree: Mapping[str, Any]) -> Iterator[str]:
    for node in _dicts(tree):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, Mapping):
            for entry in cte_map.get("map") or []:
                yield str(entry["key"])


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
