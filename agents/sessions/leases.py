"""Session leases: at most one worker steps a session at a time, and a dead one is replaced fast.

Several agent workers may share one session store. Without leases they stay correct (the
compare-and-swap on each slot keeps one transcript) but each may ask the model for the same step,
and every loser pays for tokens it throws away. A lease says which worker is stepping a session
and until when; the others skip it.

A lease is a chain of write-once **epochs**, the same primitive that orders a session's slots::

    sessions/<tenant>/<name>/lease/<00000001>   {"holder": ..., "expires_at": ..., "released": ...}

The newest epoch is the lease. Acquiring, renewing and releasing are all "create the next epoch":
of several workers racing for epoch E+1 exactly one wins (a conditional PUT on S3, an exclusive
link on a folder), so no backend needs an atomic overwrite. A worker may create E+1 when epoch E
is its own, released, or expired. "Its own" goes by holder name, which names one worker across
restarts (``agents/worker_identity.py``): a live lease under this worker's name that it does not
hold now was left by its previous incarnation, killed, and is taken back at once. Should two live
processes bear one name by mistake, each takes the session from the other; the one displaced
sees it at its next renewal (and logs it as an error), and the slot compare-and-swap keeps the
transcript correct. After each win the epochs below E-1 are deleted so the chain
stays two entries long; because a deleted epoch could be created again by a worker that read the
chain long ago, a win counts only if the listing afterwards shows no newer epoch.

Clocks: ``expires_at`` is the holder's wall clock plus the lease length, and other workers compare
it with their own wall clock. This assumes the workers' clocks agree to well within the lease
length (NTP gives milliseconds; the default lease is 30 s). A clock that runs ahead lets its
worker take over early; the cost is at most one duplicated model call, never a wrong transcript:
the lease only saves work, and the compare-and-swap on each slot stays the guard.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from emberlake.errors import EmberlakeError, SessionError

from .objects import canonical_json
from .snapshots import session_key
from .store import ObjectStore

log = logging.getLogger(__name__)

_EPOCH_DIGITS = 8
#: Tries of a read of the newest epoch that a concurrent pruning deleted under us.
_READ_TRIES = 5


@dataclass(frozen=True)
class Lease:
    """One epoch of a session's lease."""

    session_id: str
    holder: str
    epoch: int
    #: Unix seconds on the holder's clock after which others may take the session over.
    expires_at: float
    released: bool = False

    def live(self, now: float) -> bool:
        """Held by its holder at ``now`` (not released, not expired)."""
        return not self.released and now < self.expires_at

    def to_json(self, now: float) -> dict[str, Any]:
        """For people and tools: times as RFC 3339 UTC, and whether it is live at ``now``."""
        return {
            "holder": self.holder,
            "epoch": self.epoch,
            "expires_at": _rfc3339(self.expires_at),
            "released": self.released,
            "live": self.live(now),
        }

    def describe(self, now: float) -> str:
        """One line: who holds the session, or who last did and since when it is free."""
        at = _rfc3339(self.expires_at)
        if self.released:
            return f"released by {self.holder} at {at} (epoch {self.epoch})"
        if self.live(now):
            return (
                f"held by {self.holder} until {at} (in {self.expires_at - now:.0f} s,"
                f" epoch {self.epoch})"
            )
        return (
            f"expired at {at} ({now - self.expires_at:.0f} s ago), last held by {self.holder}"
            f" (epoch {self.epoch})"
        )

    def to_bytes(self) -> bytes:
        return canonical_json(
            {"holder": self.holder, "expires_at": self.expires_at, "released": self.released}
        )

    @classmethod
    def from_bytes(cls, session_id: str, epoch: int, data: bytes) -> Lease:
        try:
            raw = json.loads(data)
            return cls(
                session_id,
                str(raw["holder"]),
                epoch,
                float(raw["expires_at"]),
                bool(raw.get("released", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SessionError(
                f"lease {epoch} of session {session_id} is malformed: {exc}"
            ) from None


def _rfc3339(unix_seconds: float) -> str:
    at = datetime.fromtimestamp(unix_seconds, tz=UTC).isoformat(timespec="milliseconds")
    return at.replace("+00:00", "Z")


class SessionLeases:
    """The leases of one store's sessions, as seen by one holder (a worker)."""

    def __init__(
        self,
        store: ObjectStore,
        holder: str,
        seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        if seconds <= 0:
            raise SessionError(f"a lease must last more than 0 seconds, not {seconds}")
        self.store = store
        self.holder = holder
        self.seconds = seconds
        self.clock = clock

    def _prefix(self, session_id: str) -> str:
        return f"{session_key(session_id)}/lease/"

    def _key(self, session_id: str, epoch: int) -> str:
        return f"{self._prefix(session_id)}{epoch:0{_EPOCH_DIGITS}d}"

    def _epochs(self, session_id: str) -> list[int]:
        names = (k.rsplit("/", 1)[1] for k in self.store.list(self._prefix(session_id)))
        return sorted(int(n) for n in names if n.isdigit())

    def current(self, session_id: str) -> Lease | None:
        """The newest epoch of the session's lease, or None if it never had one."""
        for _ in range(_READ_TRIES):
            epochs = self._epochs(session_id)
            if not epochs:
                return None
            data = self.store.read(self._key(session_id, epochs[-1]))
            if data is not None:
                return Lease.from_bytes(session_id, epochs[-1], data)
            # Deleted between listing and reading: a newer epoch exists now, list again.
        raise SessionError(f"the lease of session {session_id} changes too fast to read")

    def acquire(self, session_id: str) -> Lease | None:
        """Take the session's lease, or None while another live holder has it."""
        now = self.clock()
        current = self.current(session_id)
        if current is not None and current.live(now) and current.holder != self.holder:
            return None
        epoch = current.epoch + 1 if current is not None else 1
        return self._claim(Lease(session_id, self.holder, epoch, now + self.seconds))

    def renew(self, lease: Lease) -> Lease | None:
        """Extend a lease this holder has; None if it was lost (taken over after expiring)."""
        self._check_own(lease)
        return self._claim(
            replace(lease, epoch=lease.epoch + 1, expires_at=self.clock() + self.seconds)
        )

    def release(self, lease: Lease) -> bool:
        """Give the session up so others may take it at once; False if it was lost already."""
        self._check_own(lease)
        now = self.clock()
        ended = replace(lease, epoch=lease.epoch + 1, expires_at=now, released=True)
        return self._claim(ended) is not None

    def keep(self, lease: Lease, interval: float | None = None) -> LeaseKeeper:
        """A keeper renewing ``lease`` on a timer (by default three times per lease length)."""
        return LeaseKeeper(self, lease, interval if interval is not None else self.seconds / 3)

    def _check_own(self, lease: Lease) -> None:
        if lease.holder != self.holder:
            raise SessionError(f"{self.holder} cannot change a lease held by {lease.holder}")

    def _claim(self, lease: Lease) -> Lease | None:
        """Create the lease's epoch; the lease if that made it the newest, else None."""
        if not self.store.create_if_absent(
            self._key(lease.session_id, lease.epoch), lease.to_bytes()
        ):
            return None
        epochs = self._epochs(lease.session_id)
        if not epochs or epochs[-1] != lease.epoch:
            # This epoch had been pruned and was created again from an old view: not a win. The
            # newest epoch is never pruned, so a listing after the create always shows it.
            return None
        for old in epochs:
            if old < lease.epoch - 1:
                try:
                    self.store.delete(self._key(lease.session_id, old))
                except EmberlakeError as exc:
                    log.debug("lease %d of %s stays: %s", old, lease.session_id, exc)
        return lease


class LeaseKeeper:
    """Renews a lease on a timer thread while work runs; releases it when closed.

    ``held`` turns False once a renewal finds the lease taken over, or once the lease has expired
    without a successful renewal (a store outage): the work should stop before its next step.
    """

    def __init__(self, leases: SessionLeases, lease: Lease, interval: float):
        self.leases = leases
        self.lease = lease
        self.interval = interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease {lease.session_id}", daemon=True
        )

    @property
    def held(self) -> bool:
        return not self.lost and self.leases.clock() < self.lease.expires_at

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                renewed = self.leases.renew(self.lease)
            except EmberlakeError as exc:
                log.warning("session %s: cannot renew its lease: %s", self.lease.session_id, exc)
                continue
            if renewed is None:
                self.lost = True
                self._report_loss()
                return
            self.lease = renewed

    def _report_loss(self) -> None:
        session_id = self.lease.session_id
        try:
            taker = self.leases.current(session_id)
        except EmberlakeError:
            taker = None
        if taker is not None and taker.holder == self.leases.holder:
            # This process still holds the lease it renews, so the taker is another live process
            # under the same name: a configuration mistake that costs duplicated model calls.
            log.error(
                "session %s: its lease was taken by another live worker named %r, as this one is:"
                " give each worker its own agents.worker_id",
                session_id,
                self.leases.holder,
            )
        else:
            log.warning("session %s: its lease was taken over by another worker", session_id)

    def close(self) -> None:
        """Stop renewing and release the lease unless it was lost."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.lost:
            return
        try:
            if not self.leases.release(self.lease):
                self.lost = True
        except EmberlakeError as exc:
            # It expires by itself; the next worker only waits a little longer.
            log.warning("session %s: cannot release its lease: %s", self.lease.session_id, exc)
