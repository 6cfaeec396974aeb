"""Column names: sanitising, length cap, collisions, docs."""

from __future__ import annotations

from lake.schema_inference.naming import (
    MAX_NAME_LENGTH,
    Scope,
    base_name,
    column_name,
    doc_for,
    key_hash,
    parse_doc,
    sanitise,
)
from lake.schema_inference.types import SIBLING_SUFFIX


def test_sanitise_examples() -> None:
    assert sanitise("http.status_code") == "http_status_code"
    assert sanitise("Service.Name") == "service_name"
    assert sanitise("  weird--key..Ü/x  ") == "weird_key_x"
    assert sanitise("__a__b__") == "a_b"
    assert sanitise("...") == ""


def test_prefix_by_scope() -> None:
    assert base_name("record", "http.route") == "attr_http_route"
    assert base_name("resource", "host.name") == "res_host_name"
    assert base_name("scope", "library.tier") == "scope_library_tier"


def test_empty_sanitised_key_uses_a_hash() -> None:
    name = base_name("record", "日本")
    assert name == f"attr_k_{key_hash('record', '日本')}"
    assert name != base_name("record", "中文")


def test_long_names_are_cut_with_a_stable_hash() -> None:
    key = "very." * 30 + "long.key"
    name = base_name("record", key)
    assert len(name) <= 55
    assert name.endswith("_" + key_hash("record", key))
    assert name == base_name("record", key)
    other = base_name("record", "very." * 30 + "other.key")
    assert other != name
    for suffix in SIBLING_SUFFIX.values():
        assert len(name + suffix) <= MAX_NAME_LENGTH


def test_collisions_first_come_first_served() -> None:
    taken: set[str] = set()
    first = column_name("record", "http.status_code", taken)
    taken.add(first)
    second = column_name("record", "http_status_code", taken)
    taken.add(second)
    third = column_name("record", "HTTP.Status.Code", taken)
    assert first == "attr_http_status_code"
    assert second == f"attr_http_status_code_{key_hash('record', 'http_status_code')}"
    assert third.startswith("attr_http_status_code_") and third not in taken
    # Deterministic: the same situation gives the same names.
    assert column_name("record", "http_status_code", {first}) == second


def test_core_column_names_are_avoided() -> None:
    # A scope attribute "name" would collide with the core column scope_name.
    name = column_name("scope", "name", {"scope_name", "scope_version"})
    assert name == f"scope_name_{key_hash('scope', 'name')}"


def test_plain_names_never_contain_double_underscore() -> None:
    for key in ("a__b", "x..y", "__init__", "a_._b"):
        assert "__" not in base_name("record", key)


def test_docs_round_trip() -> None:
    for scope in Scope:
        doc = doc_for(scope, "http.route")
        assert parse_doc(doc) == (scope, "http.route")
    assert doc_for("record", "http.route") == "attribute http.route"
    assert doc_for("resource", "service.name") == "resource attribute service.name"
    assert parse_doc("OTLP span name") is None
    assert parse_doc(None) is None
    assert parse_doc("attribute ") is None
