"""The reference sets' class balance per origin handle as a PNG. Pure: matplotlib's Agg canvas
on a Figure (no pyplot, no state shared between requests), no Django.

Real and Bogus keep the Okabe-Ito colours of the aggregation figures; every category also has
its own hatching, so the bars read without colour.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from aggregation.plots import BOGUS_COLOUR, DPI, NEUTRAL_COLOUR, REAL_COLOUR
from labeling.agreement.core import CATEGORIES

CATEGORY_STYLE = {
    "real": (REAL_COLOUR, ""),
    "bogus": (BOGUS_COLOUR, "//"),
    "unsure": (NEUTRAL_COLOUR, ".."),
}
PANEL_WIDTH = 7.0
# Height of one origin's bar, and of a panel's title and axis, in inches.
ROW_HEIGHT = 0.35
PANEL_MARGIN = 1.1


def plot_class_balance(balance: Mapping[str, Mapping[str, Mapping[str, int]]]) -> bytes:
    """One panel per reference set: for each origin handle a horizontal bar of its labels,
    stacked Real, Bogus, Unsure. `balance` is {set name: {origin: {category: labels}}}."""
    heights = [PANEL_MARGIN + ROW_HEIGHT * max(len(origins), 1) for origins in balance.values()]
    figure = Figure(figsize=(PANEL_WIDTH, max(sum(heights), 2.0)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    if not balance:
        ax = figure.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no reference set", ha="center", va="center", color=NEUTRAL_COLOUR)
    else:
        axes = figure.subplots(len(balance), 1, squeeze=False, height_ratios=heights)[:, 0]
        for ax, (set_name, origins) in zip(axes, balance.items(), strict=True):
            _panel(ax, set_name, origins)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _panel(ax, set_name: str, origins: Mapping[str, Mapping[str, int]]) -> None:
    names = [origin or "(no origin)" for origin in origins]
    rows = np.arange(len(names))
    left = np.zeros(len(names))
    for category in CATEGORIES:
        counts = np.array([origin_counts.get(category, 0) for origin_counts in origins.values()],
                          np.float64)
        colour, hatch = CATEGORY_STYLE[category]
        ax.barh(rows, counts, left=left, color=colour, hatch=hatch, edgecolor="white",
                label=category.capitalize())
        left += counts
    ax.set_yticks(rows, names)
    ax.invert_yaxis()
    ax.set_xlabel("reference labels")
    ax.set_title(f"{set_name}: labels per origin")
    if not names:
        ax.text(0.5, 0.5, "no labels", ha="center", va="center", transform=ax.transAxes,
                color=NEUTRAL_COLOUR)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Outside the axes, so the legend never hides the longest bar.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
