"""The query daemon: SQL over a tenant's Iceberg tables, served over HTTP.

Modules: :mod:`queryd.guard` (which SQL is allowed), :mod:`queryd.scans` (Iceberg snapshots and
their files), :mod:`queryd.engine` (``DuckDBEngine``), :mod:`queryd.results` (wire encodings),
:mod:`queryd.metadata` (table descriptions), :mod:`queryd.querylog` (what tenants ask),
:mod:`queryd.server` (the aiohttp API), :mod:`queryd.client` (``QueryClient``) and
:mod:`queryd.commands` (``emberlake queryd`` / ``emberlake query``). Submodules are imported on
use, so ``emberlake query`` does not load DuckDB or pyiceberg.
"""
