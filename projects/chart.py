"""A small bar chart of counts per day, as geometry for an inline SVG (pure, no Django)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: float
    y: float
    width: float
    height: float


def day_bars(days: Sequence[date], counts: Sequence[int], *, width: float = 600.0,
             height: float = 120.0, gap: float = 2.0) -> list[Bar]:
    """One bar per day, left to right, heights in proportion to the counts, the largest
    reaching the top (y grows downwards, as in SVG); all zero: all flat."""
    if len(days) != len(counts):
        raise ValueError("one count per day")
    if not days:
        return []
    slot = width / len(days)
    peak = max(counts)
    bars = []
    for i, (day, count) in enumerate(zip(days, counts, strict=True)):
        bar_height = height * count / peak if peak else 0.0
        bars.append(Bar(day, count, x=i * slot + gap / 2, y=height - bar_height,
                        width=max(slot - gap, 1.0), height=bar_height))
    return bars
