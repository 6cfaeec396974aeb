"""Times rendered as text by the flatteners (span event times) match ``datetime.isoformat``."""

from __future__ import annotations

import datetime as dt
import random

from lake.flatten.common import iso_time

T = 1_700_000_000_000_000_000


def test_iso_time_is_what_datetime_isoformat_gives() -> None:
    rng = random.Random(7)
    samples = [1, 999, 1000, 10**9, T, T + 1000, 2**33 * 10**9 - 1, 2**33 * 10**9, 2**63]
    samples += [rng.randrange(1, 2**34 * 10**9) for _ in range(5000)]
    samples += [rng.randrange(1, 2**34) * 10**9 for _ in range(200)]  # whole seconds
    samples += [T + rng.randrange(10**9) for _ in range(2000)]  # one second, many fractions
    for nanos in samples:
        expected = dt.datetime.fromtimestamp(nanos // 1000 / 1_000_000, tz=dt.UTC).isoformat()
        assert iso_time(nanos) == expected, nanos
    assert iso_time(0) is None
