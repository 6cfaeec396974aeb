"""Writer checkpoints in a real SQLite catalog: stale clusters' marks are removed."""

from __future__ import annotations

from pathlib import Path

from emberlake.settings import Settings
from lake.catalog import open_catalog
from lake.offsets import CheckpointStore, checkpoint_property


def test_checkpoints_of_other_clusters_are_forgotten(tmp_path: Path) -> None:
    catalog = open_catalog(Settings(data_dir=str(tmp_path / "data")))
    CheckpointStore(catalog, "old").save({("t", 0): 7, ("t", 1): 3})
    current = CheckpointStore(catalog, "new")
    current.save({("t", 0): 2})
    catalog.update_namespace_properties("emberlake", updates={"unrelated": "kept"})

    assert current.forget_other_clusters() == 2
    assert current.forget_other_clusters() == 0

    properties = catalog.load_namespace_properties("emberlake")
    assert checkpoint_property("old", "t", 0) not in properties
    assert checkpoint_property("old", "t", 1) not in properties
    assert properties["unrelated"] == "kept"
    assert current.load([("t", 0)]) == {("t", 0): 2}
    assert CheckpointStore(catalog, "old").load([("t", 0)]) == {("t", 0): None}
