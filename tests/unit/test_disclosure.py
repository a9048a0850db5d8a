"""The small-count suppression rule of the programme report."""

from __future__ import annotations

from server.domain.disclosure import SUPPRESSED, derived, protect_column, suppress


def test_counts_of_one_to_four_are_withheld() -> None:
    assert [suppress(n) for n in range(7)] == [0, *[SUPPRESSED] * 4, 5, 6]
    assert suppress(None) is None
    assert str(SUPPRESSED) == "< 5"


def test_a_rate_built_on_a_withheld_count_is_withheld() -> None:
    assert derived(0.25, 3, SUPPRESSED) is SUPPRESSED
    assert derived(0.25, 12, 40) == 0.25
    assert derived(None, 0) is None


def test_a_lone_withheld_cell_takes_the_smallest_other_with_it_when_the_total_shows() -> None:
    assert protect_column([9, 2, 30, 0], total_shown=True) == [SUPPRESSED, SUPPRESSED, 30, 0]
    assert protect_column([9, 2, 30], total_shown=False) == [9, SUPPRESSED, 30]
    assert protect_column([9, 2, 3], total_shown=True) == [9, SUPPRESSED, SUPPRESSED]
    assert protect_column([9, 0, 12], total_shown=True) == [9, 0, 12]
