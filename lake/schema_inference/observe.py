"""Observing a batch: counting each attribute key's values into the inference state.

Per batch and scope this runs in time proportional to the number of *distinct* keys (the
per-value work is NumPy grouping in :mod:`lake.schema_inference.attributes`). Keys are visited in
sorted order, so the resulting state depends only on the data, never on dict or arrival order
within a batch.

Unbounded keys (see :mod:`lake.schema_inference.families`) are not tracked one by one; their
values are counted into their family. Tracked keys are capped by the policy's
``max_tracked_keys``: beyond it, the unpromoted keys seen least recently (then least often) are
forgotten, and start afresh if they come back.
"""

from __future__ import annotations

from collections.abc import Mapping

from lake.schema_inference import families
from lake.schema_inference.attributes import Attributes
from lake.schema_inference.naming import SCOPE_ORDER, Scope
from lake.schema_inference.policy import PromotionPolicy
from lake.schema_inference.state import MAX_ID_FAMILIES, FamilyStats, InferenceState, KeyId
from lake.schema_inference.stats import KeyStats


def batch_rows(batch: Mapping[Scope, Attributes]) -> int:
    """The common row count of a batch's attribute sets."""
    counts = {attrs.n_rows for attrs in batch.values()}
    if len(counts) > 1:
        raise ValueError(f"attribute sets of one batch disagree on the row count: {counts}")
    return counts.pop() if counts else 0


def observe(
    state: InferenceState,
    policy: PromotionPolicy,
    batch: Mapping[Scope | str, Attributes],
    timestamp_us: int,
) -> InferenceState:
    """Count one batch's attributes (by scope) into ``state``; returns ``state``."""
    scoped = {Scope(scope): attrs for scope, attrs in batch.items()}
    n_rows = batch_rows(scoped)
    batch_index = state.batches + 1
    joined: set[KeyId] = set()  # templates that gained a member in this batch
    for scope in sorted(scoped, key=SCOPE_ORDER.__getitem__):
        counts = scoped[scope].kind_counts()
        for key in sorted(counts):
            kind_counts = counts[key]
            stats = state.keys.get((scope, key))
            if stats is None:
                family = unbounded_family(state, scope, key)
                if family is not None:
                    _count_family(state, family, key, sum(kind_counts.values()), timestamp_us)
                    continue
                stats = KeyStats(
                    rows_before=state.rows, first_seen_us=timestamp_us, last_seen_us=timestamp_us
                )
                joined.update(state.track(scope, key, stats))
            stats.add(kind_counts, batch_index, timestamp_us)
    state.rows += n_rows
    state.batches = batch_index
    # Judged after counting, so a family's first batch already shows how rows carry it.
    for family in sorted(joined):
        known = state.families.get(family)
        if known is not None and known.grown:
            continue
        members = state.family_members(family)
        if len(members) > policy.family_max_keys and (
            _keys_per_row(state, family[0], members) < policy.family_keys_per_row
        ):
            _flag_grown(state, family, timestamp_us)
    _evict(state, policy)
    return state


def _keys_per_row(state: InferenceState, scope: Scope, members: set[str]) -> float:
    """How many of the family's keys a row carries on average, since the family appeared."""
    stats = [state.keys[(scope, key)] for key in members if (scope, key) in state.keys]
    rows = state.rows - min(s.rows_before for s in stats)
    return sum(s.present for s in stats) / rows if rows > 0 else 0.0


def unbounded_family(state: InferenceState, scope: Scope, key: str) -> KeyId | None:
    """The unbounded family an untracked key belongs to, or ``None`` if it may be tracked."""
    family = state.known_unbounded(scope, key)
    if family is not None:
        return family
    template = families.id_template(key)
    if template is not None:
        family = (scope, template)
    else:
        for candidate in families.templates(key):
            found = state.families.get((scope, candidate))
            if found is not None and found.grown:
                family = (scope, candidate)
                break
    if family is not None:
        state.remember_unbounded(scope, key, family)
    return family


def _count_family(
    state: InferenceState, family: KeyId, key: str, count: int, timestamp_us: int
) -> None:
    stats = state.families.get(family)
    if stats is None:
        described = sum(1 for f in state.families.values() if not f.grown)
        if described >= MAX_ID_FAMILIES:
            return
        stats = state.families[family] = FamilyStats(timestamp_us, timestamp_us, grown=False)
    stats.add(key, count, timestamp_us)


def _flag_grown(state: InferenceState, family: KeyId, timestamp_us: int) -> None:
    scope, _ = family
    stats = state.families.get(family)
    if stats is None:
        stats = state.families[family] = FamilyStats(timestamp_us, timestamp_us, grown=True)
    # An id-like family of the same template becomes a grown one: its keys now also match.
    stats.grown = True
    for member in sorted(state.family_members(family)):
        forgotten = state.untrack(scope, member)
        if forgotten is not None:
            stats.add(member, forgotten.present, timestamp_us)
            stats.first_seen_us = min(stats.first_seen_us, forgotten.first_seen_us)
            state.remember_unbounded(scope, member, family)


def _evict(state: InferenceState, policy: PromotionPolicy) -> None:
    excess = len(state.keys) - policy.max_tracked_keys
    if excess <= 0:
        return
    candidates = sorted(
        (stats.last_batch, stats.present, SCOPE_ORDER[scope], key)
        for (scope, key), stats in state.keys.items()
        if not state.is_promoted(scope, key)
    )
    by_order = {SCOPE_ORDER[s]: s for s in Scope}
    for *_, order, key in candidates[:excess]:
        state.untrack(by_order[order], key)
