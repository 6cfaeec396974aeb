"""Error signature normalisation: variable parts become placeholders, the rest is kept."""

from __future__ import annotations

import pytest

from agents.detection.signature import error_signature, message_template


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("missing key 'user-81723'", "missing key <str>"),
        ('no such table "orders_2026"', "no such table <str>"),
        (
            "timeout after 30.5s connecting to 10.0.0.12:5432",
            "timeout after <num>s connecting to <ip>",
        ),
        ("file /var/lib/app/x.db not found", "file <path> not found"),
        ("object 3f2a9c1e77ab not found id=42", "object <hex> not found id=<num>"),
        (
            "req 123e4567-e89b-12d3-a456-426614174000 failed at 0xdeadbeef",
            "req <uuid> failed at <hex>",
        ),
        ("GET https://api.example.com/v1/users/17 returned 503", "GET <url> returned <num>"),
        ("user bob@example.com disabled", "user <email> disabled"),
        ("division   by\nzero", "division by zero"),
    ],
)
def test_templates(message: str, template: str) -> None:
    assert message_template(message) == template


def test_same_failure_same_fingerprint_other_failure_other_fingerprint() -> None:
    a = error_signature("KeyError", "missing key 'user-1'")
    b = error_signature("KeyError", "missing key 'user-999'")
    c = error_signature("ValueError", "missing key 'user-1'")
    assert a == b and a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 16
    assert error_signature("", "").type == "Error"
