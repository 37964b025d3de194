"""Startup's heap is frozen out of the collector's walks, and every collection is timed."""

from __future__ import annotations

import gc

import pytest

from modelog_platform.gcpauses import Pauses, settle


def test_settle_moves_what_startup_made_out_of_the_generations_a_collection_walks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ballast = [[i] for i in range(100_000)]  # a heap the size of a started server's
    try:
        assert settle() >= len(ballast)
        walked = {id(o) for g in range(3) for o in gc.get_objects(generation=g)}
        assert not any(id(b) in walked for b in ballast[::1000])
        gc.unfreeze()
        monkeypatch.setenv("MODELOG_GC_FREEZE", "0")
        assert settle() == 0 and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        del ballast


def test_every_collection_is_counted_by_generation_with_its_longest_pause() -> None:
    pauses = Pauses()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.close()
    assert pauses.count[0] >= 1 and pauses.count[2] >= 1
    assert pauses.longest_ms[2] > 0 and pauses.total_ms >= pauses.longest_ms[2]
    assert pauses.summary().startswith("gc pauses: gen0 ")
    seen = list(pauses.count)
    gc.collect()
    assert pauses.count == seen  # closed: no longer observed
