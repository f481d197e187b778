"""What the model-registry pages show, worked out from stored values: the lineage order of the
version list, the key numbers of an evaluation and their differences between two versions, the
per-origin table, a training job's progress and its loss chart (drawn as inline SVG by the
templates). Pure (no Django, no database), so the views stay thin and all of it is unit-tested.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from training.ml import plots

UNDEFINED = "undefined"


# --- the evaluation figures ------------------------------------------------------------------


@dataclass(frozen=True)
class FigureKind:
    """One evaluation figure: its URL slug, its title, the alternative text of its image (the
    numbers it shows are also in the page's tables) and the function that draws it."""

    slug: str
    title: str
    description: str
    draw: Callable[[Mapping[str, Mapping]], bytes]


FIGURES: dict[str, FigureKind] = {figure.slug: figure for figure in (
    FigureKind("purity-completeness", "Purity and completeness against threshold",
               "Purity and completeness against the score threshold, with the range where the "
               "survey requirement holds shaded and the point where they are equal marked",
               plots.plot_purity_completeness),
    FigureKind("per-origin", "Purity and completeness per origin",
               "One panel per data origin: purity and completeness against the score threshold",
               plots.plot_per_origin),
    FigureKind("distribution", "Reliability distribution",
               "Histograms of the reliability of Real and of Bogus test subjects, log scale",
               plots.plot_distribution),
    FigureKind("reliability-snr", "Reliability against SNR",
               "Median reliability with its 16-84% band against |SNR|, for Real and for Bogus "
               "test subjects", plots.plot_reliability_vs_snr),
    FigureKind("recall-at-rank", "Recall at rank K",
               "The fraction of all Reals found among the K highest scores, against K, with "
               "the area under that curve in the legend", plots.plot_recall_at_rank),
)}


# --- numbers as text -------------------------------------------------------------------------


def _fraction_text(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value:.3f}"


def _threshold_text(value: float) -> str:
    return f"{round(value, 4):g}"


def ranges_text(ranges: Sequence[Sequence[float]]) -> str:
    """Threshold ranges as "0.47 to 0.565, 0.9" (a range of one threshold is that threshold)."""
    if not ranges:
        return "none"
    return ", ".join(_threshold_text(low) if low == high
                     else f"{_threshold_text(low)} to {_threshold_text(high)}"
                     for low, high in ranges)


def equal_point_text(point: Mapping | None) -> str:
    if point is None:
        return "purity and completeness never meet"
    return (f"{_fraction_text(point['value'])} at threshold "
            f"{_threshold_text(point['threshold'])}")


# --- the key numbers of an evaluation ----------------------------------------------------------


def _part(metrics: Mapping, *keys: str) -> Any:
    """metrics[keys[0]][keys[1]]..., None where a part is missing or undefined."""
    value: Any = metrics
    for key in keys:
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        value = value[key]
    return value


@dataclass(frozen=True)
class Measure:
    """One key number of an evaluation: a count (decimals None) or a fraction."""

    label: str
    path: tuple[str, ...]
    decimals: int | None

    def value(self, metrics: Mapping) -> float | int | None:
        return _part(metrics, *self.path)

    def text(self, value: float | int | None) -> str:
        if value is None:
            return UNDEFINED
        return str(value) if self.decimals is None else f"{value:.{self.decimals}f}"

    def difference(self, a: float | int | None, b: float | int | None) -> str:
        """b - a, signed; empty when either is undefined."""
        if a is None or b is None:
            return ""
        if self.decimals is None:
            return f"{b - a:+d}"
        # Rounded first, and + 0.0 turns -0.0 into 0.0: a tiny negative is "+0.000".
        return f"{round(b - a, self.decimals) + 0.0:+.{self.decimals}f}"


RECALL_AREA = Measure("Recall-at-rank area (1 = every Real ranked first)",
                      ("recall_at_rank", "area"), 3)
MEASURES = (
    Measure("Test subjects", ("n",), None),
    Measure("Real", ("n_real",), None),
    Measure("Bogus", ("n_bogus",), None),
    Measure("Threshold where purity = completeness", ("equal_point", "threshold"), 3),
    Measure("Purity = completeness at that threshold", ("equal_point", "value"), 3),
    Measure("ROC AUC", ("roc_auc",), 3),
    RECALL_AREA,
    Measure("Rank K where recall reaches 50%", ("recall_at_rank", "k_at_half"), None),
    Measure("Rank K where recall reaches 90%", ("recall_at_rank", "k_at_90"), None),
    Measure("Test subjects it or an ancestor trained or validated on", ("seen_in_training",),
            None),
)


@dataclass(frozen=True)
class EvaluationSummary:
    """An evaluation said in words: whether the survey requirement is met, its sentence, the
    thresholds where it holds, and the key numbers as (label, text)."""

    met: bool
    message: str
    ranges: str
    equal_point: str
    recall_area: str
    numbers: list[tuple[str, str]]


def summarise(metrics: Mapping) -> EvaluationSummary:
    requirement = metrics["requirement"]
    return EvaluationSummary(
        met=bool(requirement["met"]),
        message=requirement["message"],
        ranges=ranges_text(requirement["ranges"]),
        equal_point=equal_point_text(metrics.get("equal_point")),
        recall_area=RECALL_AREA.text(RECALL_AREA.value(metrics)),
        numbers=[(measure.label, measure.text(measure.value(metrics))) for measure in MEASURES],
    )


@dataclass(frozen=True)
class ComparedNumber:
    label: str
    a: str
    b: str
    difference: str  # b - a; empty where it means nothing


def compare(metrics_a: Mapping, metrics_b: Mapping) -> list[ComparedNumber]:
    """The key numbers of two evaluations side by side, with b - a."""
    rows = [
        ComparedNumber("Survey requirement met", _yes_no(metrics_a["requirement"]["met"]),
                       _yes_no(metrics_b["requirement"]["met"]), ""),
        ComparedNumber("Thresholds where it holds",
                       ranges_text(metrics_a["requirement"]["ranges"]),
                       ranges_text(metrics_b["requirement"]["ranges"]), ""),
    ]
    for measure in MEASURES:
        a, b = measure.value(metrics_a), measure.value(metrics_b)
        rows.append(ComparedNumber(measure.label, measure.text(a), measure.text(b),
                                   measure.difference(a, b)))
    return rows


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass(frozen=True)
class OriginRow:
    origin: str
    n: int
    n_real: int
    n_bogus: int
    met: bool
    message: str
    equal_point: str


def per_origin_rows(metrics: Mapping) -> list[OriginRow]:
    """One row per data origin, by origin name; none when the evaluation has no origins."""
    return [
        OriginRow(origin=origin, n=part["n"], n_real=part["n_real"], n_bogus=part["n_bogus"],
                  met=bool(part["requirement"]["met"]), message=part["requirement"]["message"],
                  equal_point=equal_point_text(part.get("equal_point")))
        for origin, part in sorted((metrics.get("per_origin") or {}).items())
    ]


# --- the lineage of the version list ---------------------------------------------------------


MAX_INDENT = 4  # deeper versions are indented no further (their parent column says it)


@dataclass(frozen=True)
class LineageRow:
    version: Any
    depth: int  # 0 for a version whose parent is not in the list

    @property
    def indent(self) -> int:
        return min(self.depth, MAX_INDENT)


def lineage_rows(versions: Sequence[Any]) -> list[LineageRow]:
    """The versions (anything with `pk` and `parent_id`) as a tree, depth first: each version
    right after its parent, siblings and roots newest (highest pk) first. A version whose
    parent is not among `versions` is a root."""
    present = {version.pk for version in versions}
    children: dict[int | None, list[Any]] = defaultdict(list)
    for version in versions:
        parent = version.parent_id if version.parent_id in present else None
        children[parent].append(version)
    for siblings in children.values():
        siblings.sort(key=lambda version: version.pk, reverse=True)
    rows: list[LineageRow] = []
    stack = [(root, 0) for root in reversed(children[None])]
    while stack:
        version, depth = stack.pop()
        rows.append(LineageRow(version, depth))
        stack.extend((child, depth + 1) for child in reversed(children[version.pk]))
    return rows


# --- a training job's progress and loss -----------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    """Epochs finished of those asked for, and batches of the epoch under way."""

    epochs_done: int
    epochs_planned: int
    batches_done: int
    batches_total: int

    @property
    def epochs_text(self) -> str:
        return f"epoch {self.epochs_done} of {self.epochs_planned} done"

    @property
    def batches_text(self) -> str:
        if self.batches_total == 0:
            return "no batch yet"
        return (f"batch {self.batches_done} of {self.batches_total} "
                f"of epoch {self.epochs_done + 1}")


def job_progress(*, epoch: int, options: Mapping, batches_done: int,
                 batches_total: int) -> JobProgress:
    """Progress of a job from its row; early stopping may end it before `options["epochs"]`."""
    planned = int(options.get("epochs") or 0)
    return JobProgress(epochs_done=epoch, epochs_planned=max(planned, epoch),
                       batches_done=min(batches_done, batches_total),
                       batches_total=batches_total)


@dataclass(frozen=True)
class EpochRow:
    epoch: int
    train_loss: str
    val_loss: str
    seconds: str
    best: bool


def best_epoch_of(history: Sequence[Mapping]) -> int | None:
    """The (first) epoch with the lowest finite validation loss: the one training keeps."""
    finite = [row for row in history if _finite(row.get("val_loss"))]
    if not finite:
        return None
    return min(finite, key=lambda row: row["val_loss"])["epoch"]


def epoch_rows(history: Sequence[Mapping], best_epoch: int | None) -> list[EpochRow]:
    return [EpochRow(epoch=row["epoch"], train_loss=_loss_text(row.get("train_loss")),
                     val_loss=_loss_text(row.get("val_loss")),
                     seconds=f"{row['seconds']:.1f}" if _finite(row.get("seconds")) else "",
                     best=row["epoch"] == best_epoch)
            for row in history]


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _loss_text(value) -> str:
    return f"{value:.4f}" if _finite(value) else UNDEFINED


@dataclass(frozen=True)
class ChartFrame:
    """The SVG canvas (viewBox units) and the margins that hold the axis labels."""

    width: int = 480
    height: int = 240
    left: int = 56
    right: int = 16
    top: int = 12
    bottom: int = 44

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def bottom_edge(self) -> int:
        return self.top + self.plot_height

    @property
    def right_edge(self) -> int:
        return self.left + self.plot_width


LOSS_FRAME = ChartFrame()
MAX_EPOCH_TICKS = 10
LOSS_TICKS = 4  # intervals on the loss axis (five labels from 0 to the top)


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class LossChart:
    """Polylines (SVG `points`) of the training and validation loss per epoch, the axes'
    ticks, the best epoch's marker and a one-sentence description for screen readers."""

    frame: ChartFrame
    train_points: str
    val_points: str
    train_markers: list[Marker]
    val_markers: list[Marker]
    epoch_ticks: list[Tick]
    loss_ticks: list[Tick]
    best: Marker | None
    description: str


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= value (1 for value <= 0)."""
    if not value > 0:
        return 1.0
    # A subnormal value's power of ten underflows to 0: start from the smallest normal float.
    value = max(value, sys.float_info.min)
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10.0 * power


def epoch_step(last_epoch: int) -> int:
    """Label every epoch, or every 2, 5, 10, 20, 50, ...: at most MAX_EPOCH_TICKS labels."""
    step = 1
    multipliers = (2, 2.5, 2)  # 1 -> 2 -> 5 -> 10 -> 20 -> 50 -> ...
    index = 0
    while math.ceil(last_epoch / step) > MAX_EPOCH_TICKS:
        step = round(step * multipliers[index % 3])
        index += 1
    return step


def loss_chart(history: Sequence[Mapping], *, best_epoch: int | None = None,
               planned_epochs: int = 0, frame: ChartFrame = LOSS_FRAME) -> LossChart:
    """The loss chart of `history` ([{epoch, train_loss, val_loss, seconds}], epochs from 1).
    The epoch axis spans the epochs planned (or run, if more); the loss axis starts at 0.
    `best_epoch` is marked (default: the lowest validation loss so far)."""
    if best_epoch is None:
        best_epoch = best_epoch_of(history)
    last_epoch = max([planned_epochs, 1, *(row["epoch"] for row in history)])
    losses = [row[key] for row in history for key in ("train_loss", "val_loss")
              if _finite(row.get(key))]
    top = nice_ceiling(max(losses, default=0.0))

    def x(epoch: int) -> float:
        if last_epoch == 1:
            return frame.left + frame.plot_width / 2
        return round(frame.left + (epoch - 1) / (last_epoch - 1) * frame.plot_width, 1)

    def y(loss: float) -> float:
        return round(frame.bottom_edge - loss / top * frame.plot_height, 1)

    def markers(key: str, name: str) -> list[Marker]:
        return [Marker(x(row["epoch"]), y(row[key]),
                       f"epoch {row['epoch']}: {name} loss {_loss_text(row[key])}")
                for row in history if _finite(row.get(key))]

    train, val = markers("train_loss", "training"), markers("val_loss", "validation")
    best_row = next((row for row in history if row["epoch"] == best_epoch
                     and _finite(row.get("val_loss"))), None)
    best = None if best_row is None else Marker(
        x(best_epoch), y(best_row["val_loss"]),
        f"best epoch {best_epoch}: validation loss {_loss_text(best_row['val_loss'])}")
    step = epoch_step(last_epoch)
    epoch_ticks = [Tick(x(epoch), str(epoch))
                   for epoch in sorted({1, *range(step, last_epoch + 1, step)})]
    loss_ticks = [Tick(y(top * i / LOSS_TICKS), f"{top * i / LOSS_TICKS:g}")
                  for i in range(LOSS_TICKS + 1)]
    if history:
        description = (f"Training and validation loss for {len(history)} epoch"
                       f"{'' if len(history) == 1 else 's'}"
                       + (f"; the best, epoch {best_epoch}, is marked" if best else "")
                       + ". The numbers are in the table of epochs.")
    else:
        description = "No epoch has finished yet."
    return LossChart(
        frame=frame,
        train_points=" ".join(f"{marker.x},{marker.y}" for marker in train),
        val_points=" ".join(f"{marker.x},{marker.y}" for marker in val),
        train_markers=train, val_markers=val, epoch_ticks=epoch_ticks, loss_ticks=loss_ticks,
        best=best, description=description,
    )
