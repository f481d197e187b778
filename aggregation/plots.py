"""Figures of a SWAP run as PNG bytes, for the results page. Pure: matplotlib's Agg canvas on
Figure objects (no pyplot, so no global state shared between requests), no Django.

Colours are the Okabe-Ito palette, which stays distinguishable with the common forms of
colour blindness; Real and Bogus keep the same colours in every figure, and markers differ
too, so nothing depends on colour alone.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aggregation.swap import (
    BOGUS,
    REAL,
    Skills,
    SwapParams,
    SwapResult,
    VolunteerReferenceFractions,
)

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
REAL_COLOUR = OKABE_ITO["blue"]
BOGUS_COLOUR = OKABE_ITO["vermillion"]
NEUTRAL_COLOUR = "#999999"
THRESHOLD_COLOUR = OKABE_ITO["bluish_green"]
DPI = 100


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    """A Figure on its own Agg canvas: no pyplot, so no state shared between requests."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes, at the project's DPI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes,
            color=NEUTRAL_COLOUR)


def plot_volunteer_fractions(fractions: VolunteerReferenceFractions, cut: float = 0.1) -> bytes:
    """Fraction of reference Reals called Real and of reference Bogus called Bogus, against
    the volunteer's number of classifications (log x), as DMTN-337 Fig. 3. Volunteers who
    call nearly everything Real (optimistic) or Bogus (pessimistic) are ringed."""
    figure = new_figure()
    ax = figure.add_subplot()
    n = np.asarray(fractions.n_classifications, np.float64)
    real = np.asarray(fractions.frac_real_correct, np.float64)
    bogus = np.asarray(fractions.frac_bogus_correct, np.float64)
    has_real, has_bogus = np.isfinite(real) & (n > 0), np.isfinite(bogus) & (n > 0)
    if not (has_real.any() or has_bogus.any()):
        _no_data(ax, "no volunteer has classified a reference subject")
    # A little horizontal jitter keeps volunteers with equal counts apart.
    jitter = np.exp(np.random.default_rng(0).uniform(-0.08, 0.08, n.shape[0]))
    ax.scatter(n[has_real] * jitter[has_real], real[has_real], s=12, alpha=0.6,
               color=REAL_COLOUR, marker="o", label="reference Reals called Real (P)")
    ax.scatter(n[has_bogus] / jitter[has_bogus], bogus[has_bogus], s=12, alpha=0.6,
               color=BOGUS_COLOUR, marker="s", label="reference Bogus called Bogus (N)")
    for mask, colour, name in ((fractions.optimistic(cut), OKABE_ITO["orange"], "optimistic"),
                               (fractions.pessimistic(cut), OKABE_ITO["reddish_purple"],
                                "pessimistic")):
        mask = np.asarray(mask) & (n > 0)
        if mask.any():
            xs = np.concatenate([n[mask] * jitter[mask], n[mask] / jitter[mask]])
            ys = np.concatenate([real[mask], bogus[mask]])
            ax.scatter(xs, ys, s=70, facecolors="none", edgecolors=colour, linewidths=1.5,
                       label=f"{name} ({int(mask.sum())})")
    ax.axhline(1.0, color=NEUTRAL_COLOUR, linewidth=0.8, linestyle=":")
    if (n > 0).any():
        ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.08)
    ax.set_xlabel("classifications by the volunteer")
    ax.set_ylabel("fraction of reference labels matched")
    ax.set_title("Volunteers against the reference set")
    ax.legend(loc="lower right", fontsize="small")
    return png_bytes(figure)


def plot_posterior_histogram(p_real, params: SwapParams, bins: int = 50) -> bytes:
    """Histogram of the final Pr(Real) (log counts) with the Real and Bogus thresholds."""
    figure = new_figure()
    ax = figure.add_subplot()
    values = np.asarray(p_real, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        _no_data(ax)
    else:
        ax.hist(values, bins=np.linspace(0.0, 1.0, bins + 1), color=OKABE_ITO["sky_blue"],
                edgecolor=OKABE_ITO["blue"], linewidth=0.5, log=True)
    ax.axvspan(params.real_threshold, 1.0, color=REAL_COLOUR, alpha=0.12,
               label=f"Real: Pr >= {params.real_threshold:g}")
    ax.axvspan(0.0, params.bogus_threshold, color=BOGUS_COLOUR, alpha=0.12,
               label=f"Bogus: Pr <= {params.bogus_threshold:g}")
    for threshold in (params.bogus_threshold, params.real_threshold):
        ax.axvline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.2)
    ax.axvline(params.prior, color=OKABE_ITO["black"], linestyle=":", linewidth=1,
               label=f"prior {params.prior:g}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("Pr(Real) after the last classification")
    ax.set_ylabel("subjects")
    ax.set_title(f"Posterior of {values.size:,} subjects")
    ax.legend(loc="upper center", fontsize="small")
    return png_bytes(figure)


def plot_trajectories(result: SwapResult, subject_indices: Sequence[int],
                      true_label=None) -> bytes:
    """Pr(Real) after each contributing classification for a sample of subjects, starting
    from the prior at 0, with the threshold band; coloured by the true label when given."""
    return plot_trajectory_arrays(result.traj_offsets, result.traj_values, subject_indices,
                                  result.params or SwapParams(), true_label, mode=result.mode)


def plot_trajectory_arrays(traj_offsets, traj_values, subject_indices: Sequence[int],
                           params: SwapParams, true_label=None, mode: str = "") -> bytes:
    """plot_trajectories from the CSR arrays themselves (as stored), without a SwapResult."""
    offsets = np.asarray(traj_offsets)
    values = np.asarray(traj_values, np.float64)
    figure = new_figure()
    ax = figure.add_subplot()
    ax.axhspan(params.real_threshold, 1.0, color=REAL_COLOUR, alpha=0.08)
    ax.axhspan(0.0, params.bogus_threshold, color=BOGUS_COLOUR, alpha=0.08)
    for threshold in (params.bogus_threshold, params.real_threshold):
        ax.axhline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1)
    labels = None if true_label is None else np.asarray(true_label)
    styles = {REAL: (REAL_COLOUR, "-", "true Real"), BOGUS: (BOGUS_COLOUR, "--", "true Bogus")}
    seen: set[str] = set()
    drawn = 0
    for i in subject_indices:
        path = values[offsets[int(i)] : offsets[int(i) + 1]]
        if path.size == 0:
            continue
        colour, style, name = NEUTRAL_COLOUR, "-", "truth unknown"
        if labels is not None and int(labels[int(i)]) in styles:
            colour, style, name = styles[int(labels[int(i)])]
        ax.plot(np.arange(path.size + 1), np.concatenate([[params.prior], path]),
                color=colour, linestyle=style, marker=".", markersize=3, linewidth=1,
                alpha=0.7, label=None if name in seen else name)
        seen.add(name)
        drawn += 1
    if drawn == 0:
        _no_data(ax, "no trajectory among these subjects")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("contributing classifications")
    ax.set_ylabel("Pr(Real)")
    ax.set_title(f"Trajectories of {drawn} subjects" + (f" ({mode})" if mode else ""))
    if seen:
        ax.legend(loc="center right", fontsize="small")
    return png_bytes(figure)


def plot_skills(skills: Skills) -> bytes:
    """Each volunteer's P(says Bogus | Bogus) against P(says Real | Real), sized by their
    reference classifications; the diagonal p_real + p_bogus = 1 is a random guesser, the
    top-left an optimist, the bottom-right a pessimist."""
    return plot_skill_arrays(skills.p_real, skills.p_bogus, skills.contributes,
                             skills.n_real_seen + skills.n_bogus_seen)


def plot_skill_arrays(p_real, p_bogus, contributes, n_reference=None) -> bytes:
    """plot_skills from the arrays themselves (as stored), without a Skills."""
    figure = new_figure(5.5, 5.0)
    ax = figure.add_subplot()
    p_real, p_bogus = np.asarray(p_real, np.float64), np.asarray(p_bogus, np.float64)
    contributes = np.asarray(contributes, bool)
    if n_reference is None:
        size = np.full(p_real.shape[0], 16.0)
    else:
        size = 8 + 6 * np.sqrt(np.asarray(n_reference, np.float64))
    if p_real.size == 0:
        _no_data(ax)
    ax.plot([0, 1], [1, 0], color=NEUTRAL_COLOUR, linestyle=":", linewidth=1,
            label="random (p_real + p_bogus = 1)")
    ax.scatter(p_bogus[~contributes], p_real[~contributes], s=size[~contributes],
               color=NEUTRAL_COLOUR, marker="x", alpha=0.6,
               label=f"not contributing ({int((~contributes).sum())})")
    ax.scatter(p_bogus[contributes], p_real[contributes], s=size[contributes],
               color=OKABE_ITO["blue"], edgecolors="white", linewidths=0.3, alpha=0.7,
               label=f"contributing ({int(contributes.sum())})")
    ax.text(0.03, 0.97, "optimistic", transform=ax.transAxes, va="top",
            color=OKABE_ITO["orange"])
    ax.text(0.97, 0.03, "pessimistic", transform=ax.transAxes, ha="right",
            color=OKABE_ITO["reddish_purple"])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("P(says Bogus | Bogus)")
    ax.set_ylabel("P(says Real | Real)")
    ax.set_title("Volunteer skills")
    ax.legend(loc="lower left", fontsize="small")
    return png_bytes(figure)


def plot_label_set_breakdown(counts: dict[str, dict[str, dict[str, int]]]) -> bytes:
    """Subjects per class and origin in each split of a label set: one panel per split
    (`counts[split][class][origin]`, class "real" or "bogus"), Real and Bogus bars side by
    side for each origin, Bogus hatched, each bar labelled with its count."""
    splits = list(counts)
    origins = sorted({origin for split in counts.values() for by_origin in split.values()
                      for origin in by_origin})
    figure = new_figure(max(5.0, 2.2 * len(splits) + 1.5 * len(origins)), 4.0)
    axes = figure.subplots(1, max(1, len(splits)), sharey=True, squeeze=False)[0]
    if not origins:
        _no_data(axes[0], "the label set is empty")
    x = np.arange(len(origins))
    width = 0.4
    styles = (("real", -width / 2, REAL_COLOUR, "", "Real"),
              ("bogus", width / 2, BOGUS_COLOUR, "//", "Bogus"))
    for ax, split in zip(axes, splits, strict=False):
        for label, shift, colour, hatch, name in styles:
            heights = [counts[split].get(label, {}).get(origin, 0) for origin in origins]
            bars = ax.bar(x + shift, heights, width, color=colour, hatch=hatch,
                          edgecolor="white", label=name)
            ax.bar_label(bars, fontsize="x-small")
        ax.margins(y=0.12)  # room for the count labels
        ax.set_xticks(x, origins, rotation=30, ha="right")
        total = sum(sum(by_origin.values()) for by_origin in counts[split].values())
        ax.set_title(f"{split} ({total:,})")
    axes[0].set_ylabel("subjects")
    if origins:
        figure.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right",
                      fontsize="small")
    figure.suptitle("Class x origin per split")
    return png_bytes(figure)
