"""Key families: telling bounded attribute keys from unbounded ones.

Some producers put data into attribute *keys*: ``user.8f14e45f-ceea-467f-a0e6-1b2d3c4d5e6f``,
``cart.item.12345.qty``, ``tag.<whatever a user typed>``. Each such key is rare, there is no end
to them, and a column per key would explode the table. Two rules flag them; a flagged key is never
promoted and its values stay in the attributes map.

1. **Id-like keys** (:func:`id_template`). A key is id-like when it contains a UUID, or a token
   (a maximal run of ``[A-Za-z0-9]``) that is all digits (``user.123.clicks``, ``cpu.0``), a hex
   string of 8+ characters with a digit (hashes, trace ids), or 16+ characters mixing letters
   and digits (base64 and ULID-like tokens; dates and timestamps fall under "all digits"). Its
   family is the key with each such part replaced by ``*``: ``user.*.clicks``.
2. **Growing families** (:func:`templates`). Split a key at ``.``, ``/`` and ``:`` into
   segments; each key of two or more segments belongs to one template per segment, with that
   segment replaced by ``*`` (``user.alice.clicks`` -> ``*.alice.clicks``, ``user.*.clicks``,
   ``user.alice.*``). A template is an unbounded family when both hold:

   - it gathered more distinct keys than the policy's ``family_max_keys`` (default 32, above
     the widest fixed family in the OpenTelemetry semantic conventions), and
   - rows carry fewer than ``family_keys_per_row`` (default 2) of its keys on average, counted
     since the family's first key appeared.

   The second condition tells data in keys (each row names one user, one item: a new key per
   value) from wide events (``app.*`` with a hundred fields, most rows carrying dozens of
   them), whose most frequent fields deserve columns. Once flagged, the family's keys are no
   longer tracked or promoted; keys promoted before stay promoted, since columns are never
   dropped. A large family that rows carry sparsely but that stopped growing is still flagged:
   the rule cannot see the future, and its values stay queryable in the map.
"""

from __future__ import annotations

import re

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOKEN = re.compile(r"[A-Za-z0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]{8,}")
_SEPARATORS = re.compile(r"([./:])")

WILDCARD = "*"


def _id_like(token: str) -> bool:
    if token.isdigit():
        return True
    has_digit = any(c.isdigit() for c in token)
    if not has_digit:
        return False
    if len(token) >= 8 and _HEX.fullmatch(token):
        return True
    return len(token) >= 16 and not token.isdigit()


def id_template(key: str) -> str | None:
    """The key's family with id-like parts replaced by ``*``; ``None`` if nothing is id-like."""
    replaced = _UUID.sub(WILDCARD, key)
    template = _TOKEN.sub(lambda m: WILDCARD if _id_like(m.group()) else m.group(), replaced)
    return template if template != key else None


def templates(key: str) -> list[str]:
    """The single-wildcard templates a key belongs to (none for a one-segment key)."""
    parts = _SEPARATORS.split(key)
    segments = parts[::2]
    if len(segments) < 2:
        return []
    out = []
    for i in range(0, len(parts), 2):
        if parts[i] == WILDCARD:
            continue
        out.append("".join(parts[:i] + [WILDCARD] + parts[i + 1 :]))
    return out
