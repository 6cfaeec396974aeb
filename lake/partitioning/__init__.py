"""Adaptive partitioning: table statistics, query-log analysis and the layout policy (pure).

Nothing here touches a catalog, a file or a query engine: ``lake/layout.py`` collects
:class:`TableStats` from Iceberg and query records from the query log, and applies the
:class:`Proposal` that :func:`propose` returns.
"""

from lake.partitioning.policy import LayoutChange, PolicyThresholds, Proposal, propose
from lake.partitioning.querylog import (
    ColumnUsage,
    QueryRecord,
    SqlUsage,
    Workload,
    analyze_sql,
    summarize,
)
from lake.partitioning.stats import (
    DayStats,
    Layout,
    LayoutField,
    PartitionStats,
    SortKey,
    TableStats,
    day_stats,
)

__all__ = [
    "ColumnUsage",
    "DayStats",
    "Layout",
    "LayoutChange",
    "LayoutField",
    "PartitionStats",
    "PolicyThresholds",
    "Proposal",
    "QueryRecord",
    "SortKey",
    "SqlUsage",
    "TableStats",
    "Workload",
    "analyze_sql",
    "day_stats",
    "propose",
    "summarize",
]
