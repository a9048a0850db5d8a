"""The device list's totals: exact when counting is quick, reused for seconds when it is slow."""

from __future__ import annotations

from server.service_layer.views import CountMemo


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_quick_counts_are_always_exact() -> None:
    clock = Clock()
    memo = CountMemo(slow_s=0.01, keep_s=10, monotonic=clock)
    totals = iter([5, 6, 7])
    assert [memo.count("k", lambda: next(totals)) for _ in range(3)] == [5, 6, 7]


def test_a_slow_count_is_reused_until_it_expires_and_only_for_its_key() -> None:
    clock = Clock()
    memo = CountMemo(slow_s=0.01, keep_s=10, monotonic=clock)
    calls: list[str] = []

    def slow(key: str, total: int) -> int:
        calls.append(key)
        clock.now += 0.05  # counting took 50 ms
        return total

    assert memo.count("region", lambda: slow("region", 100_000)) == 100_000
    clock.now += 5
    assert memo.count("region", lambda: slow("region", 99_999)) == 100_000
    assert memo.count("unit", lambda: slow("unit", 5_000)) == 5_000, "another key: counted"
    clock.now += 6
    assert memo.count("region", lambda: slow("region", 99_998)) == 99_998, "expired: counted"
    assert calls == ["region", "unit", "region"]


def test_the_memo_stays_bounded() -> None:
    clock = Clock()
    memo = CountMemo(slow_s=0.0, keep_s=10, monotonic=clock, most=3)
    for key in range(10):
        memo.count(key, lambda: 1)
    assert len(memo._kept) <= 3
