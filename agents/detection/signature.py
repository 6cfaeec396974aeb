"""Error signatures: an exception type plus its message with the variable parts taken out.

``KeyError: 'user-81723'`` and ``KeyError: 'user-99'`` are one error; an id, a number, a path or
a quoted value in a message says *which* thing failed, not *how*. Replacing them with placeholders
gives a template that stays the same across occurrences, so a template never seen before for a
service is a new kind of failure.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_TEMPLATE = 300

# Order matters: quoted strings and URLs swallow whatever ids they contain, uuids go before hex,
# hex before plain numbers.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`"), "<str>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE), "<url>"),
    (
        re.compile(
            r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.IGNORECASE
        ),
        "<uuid>",
    ),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "<email>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w/])(?:[A-Za-z]:\\|\.{0,2}/)[^\s:,;()\[\]{}]+"), "<path>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    # Long hex runs with at least one digit and one letter: hashes, trace ids, object ids.
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE), "<hex>"),
    # Any digit run, also inside words ("worker-3", "30s"): they vary per occurrence.
    (re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<num>"),
    (re.compile(r"\s+"), " "),
)


def message_template(message: str) -> str:
    """The message with ids, numbers, quoted values, paths and addresses replaced."""
    text = message
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    text = text.strip()
    return text[:MAX_TEMPLATE]


@dataclass(frozen=True)
class ErrorSignature:
    """A normalised error: exception type and message template, with a short stable hash."""

    type: str
    template: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.type}\n{self.template}".encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "template": self.template}


def error_signature(exc_type: str, message: str) -> ErrorSignature:
    """Normalise an exception type and message into a signature."""
    return ErrorSignature(
        (exc_type or "").strip()[:200] or "Error", message_template(message or "")
    )
