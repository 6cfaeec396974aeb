"""Filter parsing (AIP-160 subset) and resource names, without a server."""

from __future__ import annotations

import pytest

from agents.resources.filtering import parse_filter
from agents.resources.names import CollectionName, ResourceName, parse
from agents.resources.schema import COLLECTIONS
from emberlake.errors import InvalidArgument

INV = COLLECTIONS["investigations"]


def matches(text: str, resource: dict) -> bool:
    return parse_filter(text, INV)(resource)


def test_or_binds_tighter_than_and() -> None:
    r = {"state": "OPEN", "service": "a", "title": "x"}
    # a AND (b OR c): false because the first term is false.
    assert not matches('service = "b" AND state = "OPEN" OR title = "x"', r)
    assert matches('service = "a" AND state = "CLOSED" OR title = "x"', r)


def test_literals_missing_fields_and_has() -> None:
    r = {"anomaly_count": 3, "fingerprints": ["f1"], "labels": {"team": "pay"}, "title": "t"}
    assert matches("anomaly_count = 3", r) and matches('anomaly_count = "3"', r)
    assert matches("anomaly_count >= 3 anomaly_count < 4", r)  # juxtaposition is AND
    assert matches('fingerprints:"f1"', r) and not matches('fingerprints:"f2"', r)
    assert matches("labels:team", r) and matches("labels.team = pay", r)
    assert not matches('summary = "x"', r) and matches('summary != "x"', r)
    assert matches('-title = "u"', r) and matches('title = "t\\"" OR title = t', r)
    assert matches("", r)


@pytest.mark.parametrize(
    "bad",
    [
        'title = "x" AND',
        "= 3",
        "title 3",
        '(title = "x"',
        "title = (",
        "nosuch = 1",
        'title = "x")',
    ],
)
def test_bad_filters(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_filter(bad, INV)


def test_names() -> None:
    assert isinstance(parse("tenants/t/investigations"), CollectionName)
    finding = parse("tenants/t/investigations/i-1/findings/f2")
    assert isinstance(finding, ResourceName)
    assert (finding.parent, finding.id, str(finding)) == (
        "tenants/t/investigations/i-1",
        "f2",
        "tenants/t/investigations/i-1/findings/f2",
    )
    with pytest.raises(InvalidArgument):
        parse("tenants/system/investigations")  # reserved tenant name
