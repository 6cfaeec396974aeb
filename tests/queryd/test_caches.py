"""The bounded LRU cache behind queryd's per-query shortcuts (pure logic)."""

from __future__ import annotations

import threading

from queryd.caches import LruCache


def test_keeps_at_most_its_bound_dropping_the_least_recently_used() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_a_bound_of_zero_keeps_nothing() -> None:
    cache: LruCache[str, int] = LruCache(0)
    cache.put("a", 1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_stays_bounded_under_threads() -> None:
    cache: LruCache[tuple[int, int], int] = LruCache(50)

    def fill(worker: int) -> None:
        for i in range(2000):
            cache.put((worker, i), i)
            cache.get((worker, i // 2))

    threads = [threading.Thread(target=fill, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
