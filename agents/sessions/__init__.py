"""Durable, content-addressed agent sessions: objects, snapshots, stores, forks and references."""

from .leases import Lease, LeaseKeeper, SessionLeases
from .objects import (
    Descriptor,
    SessionObject,
    assistant_message,
    canonical_json,
    content_address,
    render,
    system_prompt,
    tool_call,
    tool_result,
    transcript,
    user_message,
)
from .snapshots import (
    TERMINAL,
    Head,
    PendingApproval,
    SessionState,
    SessionStore,
    Snapshot,
    Usage,
)
from .store import ObjectStore, open_store, store_for

__all__ = [
    "TERMINAL",
    "Descriptor",
    "Head",
    "Lease",
    "LeaseKeeper",
    "ObjectStore",
    "PendingApproval",
    "SessionObject",
    "SessionLeases",
    "SessionState",
    "SessionStore",
    "Snapshot",
    "Usage",
    "assistant_message",
    "canonical_json",
    "content_address",
    "open_store",
    "render",
    "store_for",
    "system_prompt",
    "tool_call",
    "tool_result",
    "transcript",
    "user_message",
]
