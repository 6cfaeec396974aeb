"""Ordering and paging for List: ``order_by`` parsing, sort keys and opaque page tokens.

Pages are cut by key, not by position: a token holds the sort values and name of the last
resource returned, so inserting or deleting resources between two calls neither repeats nor
skips one that stayed. The token also carries a digest of the request's parent, filter and
order, and is refused with a different request.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.resources.schema import Collection
from emberlake.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class OrderField:
    path: tuple[str, ...]
    descending: bool


def parse_order_by(text: str, collection: Collection) -> list[OrderField]:
    """``"create_time desc, name"`` -> fields; an empty text orders by name."""
    fields: list[OrderField] = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        words = item.split()
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise InvalidArgument(
                f"invalid order_by {item!r}: expected 'field' or 'field desc', comma-separated"
            )
        path = tuple(words[0].split("."))
        if not collection.known(path[0]):
            raise InvalidArgument(
                f"invalid order_by: {collection.plural} have no field {path[0]!r}"
            )
        fields.append(OrderField(path, len(words) == 2 and words[1].lower() == "desc"))
    return fields


def _rank(value: Any) -> tuple[int, Any]:
    # A total order across JSON types, so mixed or missing values still sort deterministically.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, json.dumps(value, sort_keys=True))


def _get(resource: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = resource
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def sort_key(resource: dict[str, Any], order: Sequence[OrderField]) -> list[Any]:
    """The values a resource is ordered by, then its name as the tie-breaker (JSON-safe)."""
    return [_get(resource, f.path) for f in order] + [resource["name"]]


def compare_keys(a: list[Any], b: list[Any], order: Sequence[OrderField]) -> int:
    directions = [f.descending for f in order] + [False]
    for x, y, descending in zip(a, b, directions, strict=True):
        rx, ry = _rank(x), _rank(y)
        if rx != ry:
            result = -1 if rx < ry else 1
            return -result if descending else result
    return 0


def sort_resources(
    resources: list[dict[str, Any]], order: Sequence[OrderField]
) -> list[dict[str, Any]]:
    def cmp(a: dict[str, Any], b: dict[str, Any]) -> int:
        return compare_keys(sort_key(a, order), sort_key(b, order), order)

    return sorted(resources, key=functools.cmp_to_key(cmp))


def request_digest(parent: str, filter_text: str, order_by: str) -> str:
    return hashlib.sha256(f"{parent}\n{filter_text}\n{order_by}".encode()).hexdigest()[:16]


def encode_token(digest: str, last_key: list[Any]) -> str:
    raw = json.dumps({"d": digest, "k": last_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, digest: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        key = data["k"]
        ok = data["d"] == digest and isinstance(key, list)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidArgument(
            "invalid page_token: it is malformed or belongs to a List with another parent,"
            " filter or order_by"
        )
    return list(key)


def page_size_of(value: int | None) -> int:
    if value is None or value == 0:
        return DEFAULT_PAGE_SIZE
    if value < 0:
        raise InvalidArgument("page_size must not be negative")
    return min(value, MAX_PAGE_SIZE)
