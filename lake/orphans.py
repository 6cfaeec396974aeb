"""Orphan file removal: delete files under a table's location that no metadata references.

Compaction replaces small files and expiry (:mod:`lake.maintenance`) forgets old snapshots, but
neither deletes files; failed commits leave data files behind too. A file is an orphan when it
lies under the table's location and is referenced by none of: the current metadata file and its
metadata log, any live snapshot's manifest list, manifests and data/delete files, or statistics
files.

A file is only deleted once it is older than a safety age (default ten minutes): a writer or a
compaction may have written a file it is about to commit, and that file is not referenced yet.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from pyarrow import fs as pafs
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

log = logging.getLogger(__name__)


@dataclass
class OrphanReport:
    """What an orphan sweep found and did."""

    table: str
    listed: int = 0
    referenced: int = 0
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    #: Unreferenced but younger than the safety age, so kept.
    young: int = 0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["deleted"] = len(self.deleted)
        return data


def _path(location: str) -> str:
    """A location as the filesystem lists it (scheme dropped, bucket kept for object stores)."""
    return PyArrowFileIO.parse_location(location)[2]


def _filesystem(table: Table) -> pafs.FileSystem:
    scheme, netloc, _ = PyArrowFileIO.parse_location(table.location())
    if isinstance(table.io, PyArrowFileIO):
        return table.io.fs_by_scheme(scheme, netloc)
    filesystem, _ = pafs.FileSystem.from_uri(table.location())
    return filesystem


def referenced_files(table: Table) -> set[str]:
    """Paths of every file the table's metadata references, as the filesystem lists them."""
    metadata = table.metadata
    paths = {table.metadata_location}
    paths.update(entry.metadata_file for entry in metadata.metadata_log)
    paths.update(s.statistics_path for s in metadata.statistics)
    paths.update(s.statistics_path for s in metadata.partition_statistics)
    seen_manifests: set[str] = set()
    for snapshot in metadata.snapshots:
        paths.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            paths.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                paths.add(entry.data_file.file_path)
    return {_path(p) for p in paths}


def remove_orphan_files(
    table: Table, min_age_seconds: float = 600.0, *, dry_run: bool = False
) -> OrphanReport:
    """Delete unreferenced files under the table location older than ``min_age_seconds``."""
    report = OrphanReport(".".join(table.name()))
    table.refresh()
    # List before reading references: a file committed after the listing is either referenced
    # by then or too young to be touched.
    filesystem = _filesystem(table)
    root = _path(table.location()).rstrip("/")
    started = time.time()
    try:
        infos = filesystem.get_file_info(
            pafs.FileSelector(root, recursive=True, allow_not_found=True)
        )
    except FileNotFoundError:
        return report
    referenced = referenced_files(table)
    report.referenced = len(referenced)
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        report.listed += 1
        if info.path in referenced:
            continue
        modified = info.mtime.timestamp() if info.mtime is not None else started
        if started - modified < min_age_seconds:
            report.young += 1
            continue
        if not dry_run:
            try:
                filesystem.delete_file(info.path)
            except OSError:
                log.warning("could not delete orphan file %s", info.path)
                continue
        report.deleted.append(info.path)
        report.deleted_bytes += info.size or 0
    return report
