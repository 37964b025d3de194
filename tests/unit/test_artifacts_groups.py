"""How the artifacts SDK splits files into calls: small ones together, large ones alone."""

from __future__ import annotations

from modelog.artifacts._base import groups


def test_small_items_share_calls_up_to_a_count_or_a_byte_total_and_large_ones_go_alone() -> None:
    sizes = [100, 60, 5, 5, 5, 5, 5, 50, 50]
    out = groups(sizes, lambda n: n, alone=60, files=3, total=60)
    assert out == [[100], [60], [5, 5, 5], [5, 5, 50], [50]]
    assert groups([], lambda n: n, alone=1, files=1, total=1) == []
    assert sorted(n for g in out for n in g) == sorted(sizes)  # nothing lost, nothing repeated
