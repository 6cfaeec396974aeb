"""The catalog edge: where a namespace's tables' current metadata is, read in one query."""

from __future__ import annotations

from pathlib import Path

import pytest

from emberlake.settings import Settings
from lake.catalog import open_catalog, table_locations
from tests.queryd.lakedata import append, create_tables, log_rows

pytestmark = pytest.mark.integration


def test_table_locations_follow_commits_and_stay_in_their_namespace(tmp_path: Path) -> None:
    catalog = open_catalog(Settings(data_dir=str(tmp_path / "data")))
    acme = create_tables(catalog, "acme")
    create_tables(catalog, "other")
    locations = table_locations(catalog, "acme")
    assert locations == {
        name: catalog.load_table(("acme", name)).metadata_location
        for name in ("spans", "metrics", "logs")
    }
    logs = append(acme["logs"], log_rows(["a"]))
    after = table_locations(catalog, "acme")
    assert after is not None and locations is not None
    assert after["logs"] == logs.metadata_location != locations["logs"]
    assert after["spans"] == locations["spans"]
    assert all("/other/" not in location for location in after.values())
    assert table_locations(catalog, "nobody") == {}
