"""`heap.settle()`: start-up objects leave the collector's view; later garbage is still freed."""

from __future__ import annotations

import gc
import weakref

from lainaamo import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_settle_freezes_what_exists_and_later_cycles_are_still_collected() -> None:
    try:
        kept = Node()
        heap.settle()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen: out of view
        later = Node()
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
