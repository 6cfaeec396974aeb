"""Snapshots and sessions over an object store.

A **snapshot** is an ordered list of object descriptors plus the session's state after them
(status, step count, token usage, approvals it waits for). It is canonical JSON, stored as a blob,
so it is content-addressed too; replaying it fetches and verifies every object it lists.

A **session** is a chain of write-once slots ``0, 1, 2, ...`` each holding a snapshot address.
Writing slot N+1 is the compare-and-swap that makes a step durable: exactly one writer creates it.
A **fork** is a new session whose slot 0 holds any existing snapshot. A **reference** is a name
for a snapshot address (``refs/<name>``) that can be moved.

Keys::

    objects/<aa>/<address>                      blobs: objects and snapshots
    sessions/<tenant>/<name>/session.json       who the session is for, where it was forked from
    sessions/<tenant>/<name>/slots/<00000000>   snapshot address of step N
    refs/<name>                                 snapshot address
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from emberlake.errors import NotFound, SessionError

from .objects import Descriptor, SessionObject, canonical_json, content_address, is_address
from .store import ObjectStore

Status = Literal["running", "waiting_approval", "done", "stopped", "failed"]
TERMINAL: frozenset[str] = frozenset({"done", "stopped", "failed"})
_PART_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")
_SLOT_DIGITS = 8


def session_key(session_id: str) -> str:
    """``tenant/name`` checked and turned into its key prefix."""
    tenant, sep, name = session_id.partition("/")
    if not sep or not _PART_RE.match(tenant) or not _PART_RE.match(name):
        raise SessionError(
            f"invalid session id {session_id!r}: use tenant/name, each 1-128 characters of"
            " a-z, 0-9, '.', '_' and '-'"
        )
    return f"sessions/{tenant}/{name}"


@dataclass(frozen=True)
class Usage:
    """Model tokens spent."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens - other.input_tokens, self.output_tokens - other.output_tokens
        )

    def to_json(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Usage:
        return cls(int(raw.get("input_tokens", 0)), int(raw.get("output_tokens", 0)))


@dataclass(frozen=True)
class PendingApproval:
    """A tool call held until a person approves it (the approval resource names the decision)."""

    call_id: str
    tool: str
    input: Mapping[str, Any]
    approval: str

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "input": dict(self.input),
            "approval": self.approval,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PendingApproval:
        return cls(str(raw["call_id"]), str(raw["tool"]), dict(raw["input"]), str(raw["approval"]))


@dataclass(frozen=True)
class SessionState:
    """What a session is doing after a snapshot's objects."""

    tenant: str
    #: What the session works on, e.g. ``tenants/acme/investigations/abc``.
    subject: str = ""
    status: Status = "running"
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    pending: tuple[PendingApproval, ...] = ()
    #: Why the session stopped or finished, in words.
    reason: str = ""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "subject": self.subject,
            "status": self.status,
            "steps": self.steps,
            "usage": self.usage.to_json(),
            "pending": [p.to_json() for p in self.pending],
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SessionState:
        return cls(
            tenant=str(raw["tenant"]),
            subject=str(raw.get("subject", "")),
            status=cast(Status, raw.get("status", "running")),
            steps=int(raw.get("steps", 0)),
            usage=Usage.from_json(raw.get("usage", {})),
            pending=tuple(PendingApproval.from_json(p) for p in raw.get("pending", [])),
            reason=str(raw.get("reason", "")),
        )


@dataclass(frozen=True)
class Snapshot:
    """Ordered object descriptors plus state; ``parent`` is the snapshot it was made from."""

    objects: tuple[Descriptor, ...]
    state: SessionState
    parent: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": [d.to_json() for d in self.objects],
            "state": self.state.to_json(),
            "parent": self.parent,
        }

    @property
    def data(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def address(self) -> str:
        return content_address(self.data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        try:
            raw = json.loads(data)
            return cls(
                tuple(Descriptor.from_json(d) for d in raw["objects"]),
                SessionState.from_json(raw["state"]),
                raw.get("parent"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionError(f"a stored snapshot is malformed: {exc}") from None

    def extend(self, objects: Iterable[SessionObject], state: SessionState) -> Snapshot:
        """The next snapshot: these objects appended, this state, this snapshot as parent."""
        return Snapshot(
            self.objects + tuple(o.descriptor for o in objects), state, parent=self.address
        )


@dataclass(frozen=True)
class Head:
    """The latest slot of a session."""

    session_id: str
    seq: int
    address: str
    snapshot: Snapshot

    @property
    def state(self) -> SessionState:
        return self.snapshot.state


class SessionStore:
    """Sessions, snapshots, forks and references on one :class:`ObjectStore`."""

    def __init__(self, store: ObjectStore, cache_objects: int = 20_000):
        self.store = store
        # Objects never change, so a cache of them can never be stale.
        self._objects: dict[str, SessionObject] = {}
        self._cache_limit = cache_objects

    # Objects and snapshots -------------------------------------------------------------------

    def put_object(self, obj: SessionObject) -> str:
        return self.store.put(obj.data)

    def get_object(self, address: str) -> SessionObject:
        obj = self._objects.get(address)
        if obj is None:
            obj = SessionObject.from_bytes(self.store.get(address), expected=address)
            if len(self._objects) >= self._cache_limit:
                self._objects.clear()
            self._objects[address] = obj
        return obj

    def put_snapshot(self, snapshot: Snapshot) -> str:
        return self.store.put(snapshot.data)

    def get_snapshot(self, address: str) -> Snapshot:
        return Snapshot.from_bytes(self.store.get(address))

    def replay(self, address: str) -> list[SessionObject]:
        """Every object of a snapshot, fetched and verified, in order."""
        return [self.get_object(d.address) for d in self.get_snapshot(address).objects]

    # Sessions --------------------------------------------------------------------------------

    def _slot_key(self, session_id: str, seq: int) -> str:
        return f"{session_key(session_id)}/slots/{seq:0{_SLOT_DIGITS}d}"

    def start(
        self,
        session_id: str,
        objects: Sequence[SessionObject],
        state: SessionState,
        meta: Mapping[str, Any] | None = None,
    ) -> Head:
        """Create a session with these first objects; if it exists already, return its head."""
        for obj in objects:
            self.put_object(obj)
        snapshot = Snapshot(tuple(o.descriptor for o in objects), state)
        self._create_session(session_id, snapshot, {"tenant": state.tenant, **(meta or {})})
        return self.head(session_id)

    def _create_session(self, session_id: str, snapshot: Snapshot, meta: Mapping[str, Any]) -> bool:
        address = self.put_snapshot(snapshot)
        key = session_key(session_id)
        # Metadata first: a session that has a slot always has its metadata.
        self.store.create_if_absent(f"{key}/session.json", canonical_json(dict(meta)))
        return self.store.create_if_absent(self._slot_key(session_id, 0), address.encode())

    def exists(self, session_id: str) -> bool:
        return self.store.read(self._slot_key(session_id, 0)) is not None

    def meta(self, session_id: str) -> dict[str, Any]:
        raw = self.store.read(f"{session_key(session_id)}/session.json")
        if raw is None:
            raise NotFound(f"no session {session_id!r} in {self.store.describe()}")
        meta: dict[str, Any] = json.loads(raw)
        return meta

    def slot(self, session_id: str, seq: int) -> str | None:
        """The snapshot address in slot ``seq``, or None if that step has not happened."""
        raw = self.store.read(self._slot_key(session_id, seq))
        return raw.decode() if raw is not None else None

    def history(self, session_id: str) -> list[tuple[int, str]]:
        """(seq, snapshot address) of every slot, oldest first."""
        prefix = f"{session_key(session_id)}/slots/"
        seqs = sorted(int(k.rsplit("/", 1)[1]) for k in self.store.list(prefix) if k[-1].isdigit())
        out = []
        for seq in seqs:
            address = self.slot(session_id, seq)
            if address is not None:
                out.append((seq, address))
        if not out:
            raise NotFound(f"no session {session_id!r} in {self.store.describe()}")
        return out

    def head(self, session_id: str) -> Head:
        """The latest slot; probing past the listing so a just-written slot is not missed."""
        seq, address = self.history(session_id)[-1]
        while (nxt := self.slot(session_id, seq + 1)) is not None:
            seq, address = seq + 1, nxt
        return Head(session_id, seq, address, self.get_snapshot(address))

    def load(self, session_id: str, seq: int) -> Head:
        address = self.slot(session_id, seq)
        if address is None:
            raise NotFound(f"session {session_id!r} has no step {seq}")
        return Head(session_id, seq, address, self.get_snapshot(address))

    def commit(self, session_id: str, seq: int, snapshot: Snapshot) -> bool:
        """Write slot ``seq`` if nobody has; False means another writer got there first."""
        if seq < 1:
            raise SessionError("slot 0 is written by start or fork, not commit")
        address = self.put_snapshot(snapshot)
        return self.store.create_if_absent(self._slot_key(session_id, seq), address.encode())

    def sessions(self, tenant: str | None = None) -> list[str]:
        """Session ids, sorted; only one tenant's when given."""
        prefix = f"sessions/{tenant}/" if tenant else "sessions/"
        found = set()
        for key in self.store.list(prefix):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "session.json":
                found.add(f"{parts[1]}/{parts[2]}")
        return sorted(found)

    def fork(self, source: str, new_session_id: str) -> Head:
        """A new session whose slot 0 is the snapshot ``source`` names (see :meth:`resolve`)."""
        address = self.resolve(source)
        snapshot = self.get_snapshot(address)
        if self.exists(new_session_id):
            raise SessionError(f"session {new_session_id!r} exists already; pick another name")
        tenant = new_session_id.partition("/")[0]
        if tenant != snapshot.state.tenant:
            raise SessionError(
                f"cannot fork a session of tenant {snapshot.state.tenant!r} into {tenant!r}"
            )
        meta = {"tenant": tenant, "forked_from": {"source": source, "snapshot": address}}
        if not self._create_session(new_session_id, snapshot, meta):
            raise SessionError(f"session {new_session_id!r} was created meanwhile by another")
        return self.head(new_session_id)

    # References ------------------------------------------------------------------------------

    def set_ref(self, name: str, address: str) -> None:
        if not _REF_RE.match(name) or ".." in name:
            raise SessionError(f"invalid reference name {name!r}")
        self.get_snapshot(address)  # refuse to name something that is not a snapshot
        self.store.write(f"refs/{name}", address.encode())

    def get_ref(self, name: str) -> str | None:
        raw = self.store.read(f"refs/{name}")
        return raw.decode() if raw is not None else None

    def refs(self) -> dict[str, str]:
        out = {}
        for key in self.store.list("refs/"):
            name = key[len("refs/") :]
            address = self.get_ref(name)
            if address:
                out[name] = address
        return dict(sorted(out.items()))

    def resolve(self, spec: str) -> str:
        """A snapshot address from an address, ``tenant/name@N``, ``tenant/name`` (its head) or
        a reference name."""
        if is_address(spec):
            self.get_snapshot(spec)
            return spec
        session_id, at, seq = spec.partition("@")
        if at:
            if not seq.isdigit():
                raise SessionError(f"{spec!r}: the step after '@' must be a number")
            return self.load(session_id, int(seq)).address
        ref = self.get_ref(spec) if _REF_RE.match(spec) and ".." not in spec else None
        if ref is not None:
            return ref
        if "/" in spec and self.exists(spec):
            return self.head(spec).address
        raise NotFound(f"{spec!r} names no snapshot, session or reference")

    def session_of(self, spec: str) -> str | None:
        """The session a spec names as ``tenant/name`` or ``tenant/name@N`` (as :meth:`resolve`
        reads it); None for an address or a reference, which name a snapshot only."""
        if is_address(spec):
            return None
        session_id, at, _ = spec.partition("@")
        if not at and _REF_RE.match(spec) and ".." not in spec and self.get_ref(spec) is not None:
            return None
        return session_id if "/" in session_id and self.exists(session_id) else None


def with_state(head: Head, **changes: Any) -> SessionState:
    """The head's state with some fields changed."""
    return replace(head.state, **changes)
