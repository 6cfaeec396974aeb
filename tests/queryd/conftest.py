"""Fixtures for the query daemon: settings without a broker, and a real SQLite Iceberg catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

from emberlake.settings import QuerydSettings, Settings
from lake.catalog import open_catalog
from tests.conftest import free_port


@pytest.fixture
def qsettings(tmp_path: Path) -> Settings:
    """Settings for one test: its own data folder (catalog, warehouse, query log) and port."""
    return Settings(
        data_dir=str(tmp_path / "data"),
        queryd=QuerydSettings(port=free_port(), timeout_seconds=10.0, max_rows=1000),
    )


@pytest.fixture
def catalog(qsettings: Settings) -> Catalog:
    """The real SQLite catalog the engine will read, with the warehouse in the test's folder."""
    return open_catalog(qsettings)
