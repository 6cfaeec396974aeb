"""List filters: a small subset of AIP-160, parsed once and evaluated against resources.

Supported::

    state = "OPEN"                 comparisons  =  !=  <  <=  >  >=  on a known field
    anomaly_count > 3 AND service = "checkout"
    state = "OPEN" OR state = "INVESTIGATING"
    NOT state = "RESOLVED"         (or a leading "-")
    (a = 1 OR b = 2) AND c = "x"   parentheses
    labels.team = "payments"       a key inside an object field
    fingerprints:"9b1c"            ":" (has): a list contains the value, an object has the key

As in AIP-160, OR binds tighter than AND: ``a AND b OR c`` means ``a AND (b OR c)``. Values are
quoted strings, numbers, ``true``/``false``/``null`` or bare words (read as strings, so
``state = OPEN`` works). Comparing a missing field is false, except with ``!=``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.resources.schema import Collection
from emberlake.errors import InvalidArgument

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op><=|>=|!=|=|<|>|:)
      | (?P<paren>[()])
      | (?P<word>[^\s()"'<>=!:]+)
    )""",
    re.VERBOSE,
)
_MISSING = object()


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InvalidArgument(
                f"invalid filter at character {pos + 1}: {text[pos : pos + 20]!r}"
            )
        kind = m.lastgroup or ""
        out.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def _literal(tok: _Tok) -> Any:
    if tok.kind == "str":
        body = tok.text[1:-1]
        return re.sub(r"\\(.)", r"\1", body)
    word = tok.text
    if word in ("true", "false"):
        return word == "true"
    if word == "null":
        return None
    try:
        return int(word)
    except ValueError:
        pass
    try:
        return float(word)
    except ValueError:
        return word


def _lookup(resource: dict[str, Any], path: list[str]) -> Any:
    value: Any = resource
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compare(op: str, actual: Any, wanted: Any) -> bool:
    if op == ":":
        if isinstance(actual, list):
            return wanted in actual
        if isinstance(actual, dict):
            return wanted in actual
        return actual is not _MISSING and (wanted == "*" or actual == wanted)
    if actual is _MISSING:
        return op == "!="
    # Numbers written as strings still compare as numbers against numeric fields.
    if isinstance(actual, int | float) and isinstance(wanted, str):
        try:
            wanted = float(wanted)
        except ValueError:
            return op == "!="
    if op == "=":
        return bool(actual == wanted)
    if op == "!=":
        return bool(actual != wanted)
    comparable = (isinstance(actual, str) and isinstance(wanted, str)) or (
        isinstance(actual, int | float)
        and isinstance(wanted, int | float)
        and not isinstance(actual, bool)
    )
    if not comparable:
        return False
    if op == "<":
        return bool(actual < wanted)
    if op == "<=":
        return bool(actual <= wanted)
    if op == ">":
        return bool(actual > wanted)
    return bool(actual >= wanted)


class _Parser:
    def __init__(self, text: str, collection: Collection):
        self.toks = _tokens(text)
        self.i = 0
        self.collection = collection

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise InvalidArgument("invalid filter: it ends too early")
        self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.text == word

    def expression(self) -> Predicate:
        parts = [self.factor()]
        while True:
            if self.is_word("AND"):
                self.take()
            elif self.peek() is None or self.peek().text == ")":  # type: ignore[union-attr]
                break
            # AIP-160: terms side by side (no operator) are also joined by AND.
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def factor(self) -> Predicate:
        parts = [self.term()]
        while self.is_word("OR"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def term(self) -> Predicate:
        if self.is_word("NOT"):
            self.take()
            inner = self.term()
            return lambda r: not inner(r)
        tok = self.peek()
        if (
            tok is not None
            and tok.kind == "word"
            and tok.text.startswith("-")
            and len(tok.text) > 1
        ):
            self.toks[self.i] = _Tok("word", tok.text[1:], tok.pos + 1)
            inner = self.term()
            return lambda r: not inner(r)
        if tok is not None and tok.text == "(":
            self.take()
            inner = self.expression()
            close = self.take()
            if close.text != ")":
                raise InvalidArgument(f"invalid filter: expected ) at character {close.pos + 1}")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        field_tok = self.take()
        if field_tok.kind != "word" or field_tok.text in ("AND", "OR", "NOT"):
            raise InvalidArgument(
                f"invalid filter: expected a field name at character {field_tok.pos + 1}"
            )
        path = field_tok.text.split(".")
        if not self.collection.known(path[0]):
            raise InvalidArgument(
                f"invalid filter: {self.collection.plural} have no field {path[0]!r}; known: "
                + ", ".join(sorted(self.collection.fields))
            )
        op_tok = self.take()
        if op_tok.kind != "op":
            raise InvalidArgument(
                f"invalid filter: expected an operator after {field_tok.text!r}"
                f" at character {op_tok.pos + 1}"
            )
        value_tok = self.take()
        if value_tok.kind not in ("str", "word"):
            raise InvalidArgument(
                f"invalid filter: expected a value at character {value_tok.pos + 1}"
            )
        op, wanted = op_tok.text, _literal(value_tok)
        return lambda r: _compare(op, _lookup(r, path), wanted)


def parse_filter(text: str, collection: Collection) -> Predicate:
    """A predicate over resources of ``collection``; an empty filter matches everything."""
    if not text.strip():
        return lambda r: True
    parser = _Parser(text, collection)
    predicate = parser.expression()
    if parser.peek() is not None:
        tok = parser.peek()
        raise InvalidArgument(f"invalid filter: unexpected {tok.text!r} at character {tok.pos + 1}")  # type: ignore[union-attr]
    return predicate
