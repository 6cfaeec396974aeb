"""Adaptive partitioning: table statistics, query-log analysis, a workload cost model and the
layout policy (pure).

Nothing here touches a catalog, a file or a query engine: ``lake/layout.py`` collects
:class:`TableStats` from Iceberg and query records from the query log, and applies the
:class:`Proposal` that :func:`propose` returns.
"""

from lake.partitioning.cost import CostModel, LayoutCost, query_cost, workload_cost
from lake.partitioning.policy import LayoutChange, PolicyThresholds, Proposal, propose
from lake.partitioning.querylog import (
    ColumnUsage,
    QueryRecord,
    QueryShape,
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
    "CostModel",
    "DayStats",
    "Layout",
    "LayoutChange",
    "LayoutCost",
    "LayoutField",
    "PartitionStats",
    "PolicyThresholds",
    "Proposal",
    "QueryRecord",
    "QueryShape",
    "SortKey",
    "SqlUsage",
    "TableStats",
    "Workload",
    "analyze_sql",
    "day_stats",
    "propose",
    "query_cost",
    "summarize",
    "workload_cost",
]
