"""Predictable column names for promoted attributes.

The rule, in order:

1. **Prefix by scope**: record attributes ``attr_``, resource attributes ``res_``, instrumentation
   scope attributes ``scope_``.
2. **Sanitise the key**: lower-case it, replace every character outside ``[a-z0-9]`` with ``_``,
   collapse runs of ``_`` into one and trim ``_`` at both ends. ``http.status_code`` becomes
   ``attr_http_status_code``; ``Service.Name`` becomes ``res_service_name``. A key with nothing
   left (e.g. ``"..."`` or a key of only non-Latin letters) becomes ``k_<hash>``.
3. **Cap the length** at 55 characters (so that a sibling suffix such as ``__double`` still fits
   in 63): a longer name is cut and ends in ``_<hash>``.
4. **Resolve collisions first come, first served**: a name once given to a key is never given to
   another key nor renamed. When the sanitised name is already taken (by an earlier promoted key,
   e.g. ``http.status_code`` before ``http_status_code``, or by a table column such as the core
   ``scope_name``), the newcomer gets ``<name>_<hash>``. Promotion order is itself deterministic
   (see :mod:`lake.schema_inference.policy`), so the same data always yields the same names.

``<hash>`` is the first 8 hex digits of BLAKE2b over ``"<scope>\\0<key>"``: stable across
processes and versions, and different for every key.

Sanitised names never contain ``__``, which is reserved for sibling columns added when a key's
type outgrows its column (``attr_http_status_code__double``, ``attr_x__str``), so sibling names
cannot collide with plain ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container
from enum import StrEnum

MAX_BASE_LENGTH = 55
MAX_NAME_LENGTH = 63

_INVALID = re.compile(r"[^a-z0-9]+")


class Scope(StrEnum):
    """Where an attribute comes from."""

    RECORD = "record"
    RESOURCE = "resource"
    SCOPE = "scope"


#: Order in which scopes are visited and ranked, wherever order matters.
SCOPE_ORDER: dict[Scope, int] = {Scope.RESOURCE: 0, Scope.SCOPE: 1, Scope.RECORD: 2}

PREFIX: dict[Scope, str] = {Scope.RECORD: "attr_", Scope.RESOURCE: "res_", Scope.SCOPE: "scope_"}

#: How each scope is named in a column's doc, e.g. "resource attribute service.name".
DOC_PREFIX: dict[Scope, str] = {
    Scope.RECORD: "attribute ",
    Scope.RESOURCE: "resource attribute ",
    Scope.SCOPE: "scope attribute ",
}


def key_hash(scope: Scope | str, key: str, salt: int = 0) -> str:
    """8 hex digits identifying a key in a scope."""
    text = f"{Scope(scope).value}\0{key}" + (f"\0{salt}" if salt else "")
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()


def sanitise(key: str) -> str:
    """The key lower-cased, non-``[a-z0-9]`` runs turned into one ``_``, trimmed."""
    return _INVALID.sub("_", key.lower()).strip("_")


def base_name(scope: Scope | str, key: str) -> str:
    """The name a key gets when nothing else holds it (rules 1-3)."""
    scope = Scope(scope)
    body = sanitise(key) or f"k_{key_hash(scope, key)}"
    name = PREFIX[scope] + body
    if len(name) > MAX_BASE_LENGTH:
        cut = name[: MAX_BASE_LENGTH - 9].rstrip("_")
        name = f"{cut}_{key_hash(scope, key)}"
    return name


def column_name(scope: Scope | str, key: str, taken: Container[str]) -> str:
    """The name for a newly promoted key, given the names already in use (rule 4)."""
    name = base_name(scope, key)
    if name not in taken:
        return name
    stem = name[: MAX_BASE_LENGTH - 9].rstrip("_")
    salt = 0
    while True:
        candidate = f"{stem}_{key_hash(scope, key, salt)}"
        if candidate not in taken:
            return candidate
        salt += 1


def doc_for(scope: Scope | str, key: str) -> str:
    """The Iceberg field doc naming a promoted column's source, e.g. "attribute http.route"."""
    return DOC_PREFIX[Scope(scope)] + key


def parse_doc(doc: str | None) -> tuple[Scope, str] | None:
    """The (scope, key) a promoted column's doc names, or ``None`` for other columns."""
    if not doc:
        return None
    # Longest prefixes first: "attribute " is a suffix of the other two.
    for scope in (Scope.RESOURCE, Scope.SCOPE, Scope.RECORD):
        prefix = DOC_PREFIX[scope]
        if doc.startswith(prefix) and len(doc) > len(prefix):
            return scope, doc[len(prefix) :]
    return None
