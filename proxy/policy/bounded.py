"""Bounded memo tables for the hot path (pure).

Each table is cleared at once when full: cheaper per hit than an LRU, and a client that
sends endless distinct values (origins, heads) only makes lookups miss, never grows
memory past the limit.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(table: dict[K, V], key: K, value: V, limit: int) -> V:
    """Keep ``value`` under ``key``; ``value`` back, for ``x = remember(...)``."""
    if len(table) >= limit:
        table.clear()
    table[key] = value
    return value
