"""Query results as a text table for people at a terminal (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

#: Longest cell shown; longer values are cut with an ellipsis.
MAX_CELL = 60


def cell(value: Any) -> str:
    """One value as table text: NULL for nulls, compact JSON for maps and lists."""
    if value is None:
        text = "NULL"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    else:
        text = str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def text_table(result: Mapping[str, Any]) -> str:
    """Render a /v1/query JSON result as aligned columns with a row-count footer."""
    names = [str(c["name"]) for c in result["columns"]]
    rows: Sequence[Sequence[Any]] = result["rows"]
    numeric = [
        all(
            isinstance(r[i], int | float) and not isinstance(r[i], bool)
            for r in rows
            if r[i] is not None
        )
        and any(r[i] is not None for r in rows)
        for i in range(len(names))
    ]
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]

    def line(values: Sequence[str], right: Sequence[bool]) -> str:
        parts = [
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ]
        return " | ".join(parts).rstrip()

    out = [line(names, numeric), "-+-".join("-" * w for w in widths)]
    out += [line(r, numeric) for r in cells]
    count = int(result.get("row_count", len(rows)))
    footer = f"({count} row{'' if count == 1 else 's'}"
    if "elapsed_ms" in result:
        footer += f", {float(result['elapsed_ms']):.1f} ms"
    footer += ")"
    if result.get("truncated"):
        footer += " truncated: more rows matched; add LIMIT or aggregate"
    out.append(footer)
    return "\n".join(out)
