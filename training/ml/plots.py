"""Figures of model evaluations as PNG bytes, drawn from the stored `evaluate()` dicts alone.
Pure: matplotlib's Agg canvas on Figure objects (no pyplot, so no global state shared between
requests), no Django.

Every function takes `evaluations`: {legend label (e.g. "v0.1"): evaluate() output}, so one
model version and a comparison of several share the code. Versions differ by colour (the
Okabe-Ito palette of `aggregation.plots`) and by marker; purity is a solid line, completeness a
dashed one; Real and Bogus keep the colours, line styles and markers they have in every figure
of the project, so nothing depends on colour alone. A part an evaluation lacks ("snr",
"per_origin", "recall_at_rank") gives a figure that says so instead of an error.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes

from aggregation.plots import (
    BOGUS_COLOUR,
    NEUTRAL_COLOUR,
    OKABE_ITO,
    REAL_COLOUR,
    new_figure,
    png_bytes,
)

__all__ = [
    "plot_distribution",
    "plot_per_origin",
    "plot_purity_completeness",
    "plot_recall_at_rank",
    "plot_reliability_vs_snr",
]

# One colour and marker per version, in legend order; the Real/Bogus colours come last so a
# single version's curves do not read as "Real" and "Bogus".
VERSION_COLOURS = (OKABE_ITO["black"], OKABE_ITO["orange"], OKABE_ITO["sky_blue"],
                   OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"], OKABE_ITO["blue"],
                   OKABE_ITO["vermillion"])
VERSION_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
VERSION_HATCHES = ("//", "\\\\", "..", "xx", "--", "||", "++")
PURITY_STYLE, COMPLETENESS_STYLE = "-", "--"
# Real and Bogus: (key in the evaluation, legend name, colour, line style, marker).
CLASSES = (("real", "Real", REAL_COLOUR, "-", "o"), ("bogus", "Bogus", BOGUS_COLOUR, "--", "s"))
MARKERS_PER_CURVE = 10  # markers along a 201-point curve: enough to tell versions apart
CAPTION_WIDTH = 110  # characters per line of a requirement sentence under a figure
ORIGIN_COLUMNS = 3
RANKING_STYLES = ("-", "--", "-.")  # dotted is the perfect ranking


def _say(ax: Axes, message: str, width: int = 40) -> None:
    """Write `message`, wrapped to `width` characters, in the middle of a panel (a part that
    cannot be drawn)."""
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(message, width)), ha="center", va="center",
            transform=ax.transAxes, color=NEUTRAL_COLOUR)


def _nothing_to_draw(message: str) -> bytes:
    figure = new_figure(7.0, 3.0)
    ax = figure.add_subplot()
    ax.set_axis_off()
    _say(ax, message, width=80)
    return png_bytes(figure)


def _style(index: int) -> tuple[str, str, str]:
    """(colour, marker, hatch) of the index-th version."""
    return (VERSION_COLOURS[index % len(VERSION_COLOURS)],
            VERSION_MARKERS[index % len(VERSION_MARKERS)],
            VERSION_HATCHES[index % len(VERSION_HATCHES)])


def _floats(values) -> np.ndarray:
    """A stored list (None where undefined) as floats with NaN."""
    return np.array([np.nan if value is None else value for value in values or []],
                    dtype=np.float64)


def _percent(fraction: float) -> str:
    return f"{round(100.0 * fraction, 1):g}%"


def _draw_curves(ax: Axes, part: Mapping, name: str, index: int, *, values: bool) -> None:
    """Purity and completeness of one version (`part` holds "curve", "requirement" and
    "equal_point"), its requirement ranges shaded and its equal point starred; with `values`
    the equal point's legend entry gives its threshold and value."""
    colour, marker, hatch = _style(index)
    curve = part.get("curve") or {}
    thresholds = _floats(curve.get("thresholds"))
    if thresholds.size == 0:
        return
    every = max(1, thresholds.size // MARKERS_PER_CURVE)
    for key, style, what in (("purity", PURITY_STYLE, "purity"),
                             ("completeness", COMPLETENESS_STYLE, "completeness")):
        ax.plot(thresholds, _floats(curve.get(key)), color=colour, linestyle=style,
                marker=marker, markevery=every, markersize=4, linewidth=1.4,
                label=f"{name} {what}")
    ranges = (part.get("requirement") or {}).get("ranges") or []
    for number, (low, high) in enumerate(ranges):
        # A single grid threshold still gets a visible band.
        ax.axvspan(low, max(high, low + 0.002), facecolor=colour, alpha=0.12, hatch=hatch,
                   edgecolor=colour, linewidth=0,
                   label=f"{name} meets the requirement" if number == 0 else None)
    crossing = part.get("equal_point")
    if crossing:
        label = f"{name} purity = completeness"
        if values:
            label += f" = {_percent(crossing['value'])} at {crossing['threshold']:.3f}"
        ax.plot(crossing["threshold"], crossing["value"], marker="*", markersize=13,
                color=colour, markeredgecolor="white", linestyle="none", label=label)


def _requirement_lines(ax: Axes, evaluations: Mapping[str, Mapping]) -> None:
    """Horizontal lines at the purity and completeness minima (the first version's)."""
    requirement = next((evaluation.get("requirement") for evaluation in evaluations.values()
                        if evaluation.get("requirement")), None)
    if requirement is None:
        return
    ax.axhline(requirement["purity_min"], color=NEUTRAL_COLOUR, linestyle=PURITY_STYLE,
               linewidth=0.9, label=f"purity {_percent(requirement['purity_min'])}")
    ax.axhline(requirement["completeness_min"], color=NEUTRAL_COLOUR,
               linestyle=COMPLETENESS_STYLE, linewidth=0.9,
               label=f"completeness {_percent(requirement['completeness_min'])}")


def _caption(evaluations: Mapping[str, Mapping]) -> str:
    """Each version's requirement sentence, wrapped: it says plainly when nothing meets it."""
    lines = []
    for name, evaluation in evaluations.items():
        message = (evaluation.get("requirement") or {}).get("message")
        if message:
            lines.extend(textwrap.wrap(f"{name}: {message}", CAPTION_WIDTH))
    return "\n".join(lines)


def plot_purity_completeness(evaluations: Mapping[str, Mapping]) -> bytes:
    """Purity (solid) and completeness (dashed) against the threshold for each version, the
    thresholds meeting the requirement shaded, lines at the minima, the purity = completeness
    point starred, and under the axes each version's requirement sentence."""
    if not evaluations:
        return _nothing_to_draw("no evaluation to show")
    figure = new_figure(8.0, 5.5)
    ax = figure.add_subplot()
    for index, (name, evaluation) in enumerate(evaluations.items()):
        _draw_curves(ax, evaluation, name, index, values=True)
    _requirement_lines(ax, evaluations)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("reliability threshold (called Real when score >= threshold)")
    ax.set_ylabel("purity, completeness")
    counts = ", ".join(f"{name}: {evaluation.get('n', 0):,} subjects"
                       for name, evaluation in evaluations.items())
    ax.set_title(f"Purity and completeness ({counts})", fontsize="medium")
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="lower left", fontsize="x-small")
    # Below the x label, as a child of the axes so that the layout makes room for it.
    ax.annotate(_caption(evaluations), xy=(0.0, 0.0), xycoords="axes fraction",
                xytext=(0, -38), textcoords="offset points", va="top", ha="left",
                fontsize="small")
    return png_bytes(figure)


def plot_per_origin(evaluations: Mapping[str, Mapping]) -> bytes:
    """One small purity/completeness panel per data origin (the union over versions), each
    titled with its origin and each version's counts."""
    origins = sorted({origin for evaluation in evaluations.values()
                      for origin in (evaluation.get("per_origin") or {})})
    if not origins:
        return _nothing_to_draw("no per-origin evaluation: the subjects' origins were not given")
    columns = min(ORIGIN_COLUMNS, len(origins))
    rows = math.ceil(len(origins) / columns)
    figure = new_figure(3.6 * columns + 2.4, 3.0 * rows + 0.6)  # + the legend
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    legend: dict[str, object] = {}  # label -> handle, over all panels
    for ax, origin in zip(axes, origins, strict=False):
        counts, without_reals = [], []
        for index, (name, evaluation) in enumerate(evaluations.items()):
            part = (evaluation.get("per_origin") or {}).get(origin)
            if part is None:
                continue
            _draw_curves(ax, part, name, index, values=False)
            counts.append(f"{name}: {part.get('n_real', 0):,} R / {part.get('n_bogus', 0):,} B")
            if not part.get("n_real"):
                without_reals.append(name)
        if without_reals:
            _say(ax, f"no Real subjects ({', '.join(without_reals)}): completeness undefined",
                 width=28)
        _requirement_lines(ax, evaluations)
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
        ax.set_title(f"{origin}\n" + "; ".join(counts), fontsize="small")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(-0.02, 1.05)
    for ax in axes[len(origins):]:
        ax.set_axis_off()
    figure.supxlabel("reliability threshold")
    figure.supylabel("purity (solid), completeness (dashed)")
    if legend:
        figure.legend(list(legend.values()), list(legend), loc="outside right upper",
                      fontsize="x-small")
    figure.suptitle("Purity and completeness per origin")
    return png_bytes(figure)


def _version_panels(evaluations: Mapping[str, Mapping], *, sharey: bool) -> list[Axes]:
    figure = new_figure(max(5.0, 4.6 * len(evaluations)), 4.2)
    return list(figure.subplots(1, len(evaluations), squeeze=False, sharex=True,
                                sharey=sharey).ravel())


def plot_distribution(evaluations: Mapping[str, Mapping]) -> bytes:
    """Histogram of the reliability per class (step lines, log counts), one panel per version."""
    if not evaluations:
        return _nothing_to_draw("no evaluation to show")
    axes = _version_panels(evaluations, sharey=True)
    for ax, (name, evaluation) in zip(axes, evaluations.items(), strict=True):
        distribution = evaluation.get("distribution")
        ax.set_title(name)
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("reliability")
        if not distribution:
            _say(ax, "no score distribution stored")
            continue
        edges = _floats(distribution["bins"])
        centres = (edges[:-1] + edges[1:]) / 2
        drawn = False
        for key, label, colour, style, marker in CLASSES:
            counts = _floats(distribution.get(key))
            if counts.sum() == 0:
                continue
            ax.stairs(counts, edges, color=colour, linestyle=style, linewidth=1.5,
                      baseline=None, label=f"{label} ({int(counts.sum()):,})")
            shown = counts > 0
            ax.plot(centres[shown], counts[shown], color=colour, marker=marker,
                    linestyle="none", markersize=3)
            drawn = True
        if drawn:
            ax.set_yscale("log")
            ax.legend(loc="upper center", fontsize="small")
        else:
            _say(ax, "no subjects")
    axes[0].set_ylabel("subjects per bin")
    axes[0].get_figure().suptitle("Reliability per class")
    return png_bytes(axes[0].get_figure())


def plot_reliability_vs_snr(evaluations: Mapping[str, Mapping]) -> bytes:
    """The median reliability per class against |SNR| (log x), with the 16-84% band, one panel
    per version; the subjects without a known SNR are counted in the title."""
    if not evaluations:
        return _nothing_to_draw("no evaluation to show")
    if not any(evaluation.get("snr") for evaluation in evaluations.values()):
        return _nothing_to_draw("no reliability against SNR: the subjects' SNR was not given")
    axes = _version_panels(evaluations, sharey=True)
    for ax, (name, evaluation) in zip(axes, evaluations.items(), strict=True):
        snr = evaluation.get("snr")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("|SNR|")
        if not snr:
            ax.set_title(name)
            _say(ax, "SNR not given")
            continue
        ax.set_title(f"{name} ({snr.get('n_unknown', 0):,} without SNR)")
        centres = _floats(snr.get("centres"))
        if centres.size == 0:
            _say(ax, "no subject has a finite SNR")
            continue
        for key, label, colour, style, marker in CLASSES:
            part = snr.get(key) or {}
            median = _floats(part.get("median"))
            if not np.isfinite(median).any():
                continue
            ax.fill_between(centres, _floats(part.get("p16")), _floats(part.get("p84")),
                            color=colour, alpha=0.18, linewidth=0,
                            hatch="//" if key == "bogus" else None)
            ax.plot(centres, median, color=colour, linestyle=style, marker=marker,
                    markersize=4, label=f"{label} median (band 16-84%)")
        ax.set_xscale("log")
        if ax.get_legend_handles_labels()[1]:
            ax.legend(loc="best", fontsize="small")
    axes[0].set_ylabel("reliability")
    axes[0].get_figure().suptitle("Reliability against SNR")
    return png_bytes(axes[0].get_figure())


def plot_recall_at_rank(evaluations: Mapping[str, Mapping]) -> bytes:
    """Recall at rank K against K (log x) for each version, dotted the perfect ranking it is
    measured against, and in the legend the normalised area and the ranks where half and 90%
    of the Reals are found."""
    if not evaluations:
        return _nothing_to_draw("no evaluation to show")
    figure = new_figure(7.0, 4.5)
    ax = figure.add_subplot()
    missing = []
    for index, (name, evaluation) in enumerate(evaluations.items()):
        ranking = evaluation.get("recall_at_rank")
        if not ranking:
            missing.append(name)
            continue
        colour, marker, _ = _style(index)
        ranks = _floats(ranking["k"])
        ax.plot(ranks, _floats(ranking["recall"]), color=colour, marker=marker,
                markevery=max(1, ranks.size // MARKERS_PER_CURVE), markersize=4,
                linestyle=RANKING_STYLES[index % len(RANKING_STYLES)],
                label=(f"{name}: area {ranking['area']:.3f}, 50% by K={ranking['k_at_half']:,}, "
                       f"90% by K={ranking['k_at_90']:,}"))
        # The ranking that puts every Real first: what the area is measured against.
        n_real = evaluation.get("n_real") or 1
        ax.plot(ranks, np.minimum(ranks, n_real) / n_real, color=colour, linestyle=":",
                linewidth=1, label=f"{name}: perfect ranking")
    for level in (0.5, 0.9):
        ax.axhline(level, color=NEUTRAL_COLOUR, linestyle=":", linewidth=0.8)
    if missing:
        ax.text(0.99, 0.02, f"no Real subjects, no recall: {', '.join(missing)}",
                transform=ax.transAxes, ha="right", va="bottom", color=NEUTRAL_COLOUR)
    if len(missing) < len(evaluations):
        ax.set_xscale("log")
        ax.legend(loc="upper left", fontsize="small")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("K (the K highest reliabilities)")
    ax.set_ylabel("fraction of all Reals in the top K")
    ax.set_title("Recall at rank K")
    return png_bytes(figure)

