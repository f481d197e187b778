"""How real do the simulated stamps look? Summary statistics of simulated and real stamps,
side by side, with plots.

    python -m simulation.realism [--n 2000] [--seed 1] [--out .realism]
                                 [--realdata ../shared/realdata]

The real sets are those of `../shared/realdata` (see its README): 300 ZTF triplets (51x51,
centre-cropped from 63x63) and 50 Rubin OR4 alerts (30-46 px FITS cutouts in nJy). Simulated
subjects of each camera (`simulation.triplets.INSTRUMENTS`) are compared with the real ones
of the same camera, on statistics that do not depend on the flux unit or the stamp size:

- noise: the difference's robust sigma over the science's (how much noise subtraction adds),
  and the template's over the science's (how much deeper the template is);
- NaN fraction: the share of pixels with no data, per stamp (all three images);
- flux: the difference's central flux over its noise (a signed SNR; its sign is how many
  detections are negative);
- PSF width: the second-moment sigma, in pixels, of the source at the centre of the science
  image, measured on stamps where it stands 10 sigma above the sky;
- centroid offset: the distance, in pixels, from the stamp centre to the flux-weighted centroid
  of the difference's central source;
- noise correlation: the correlation of neighbouring sky pixels in the template (warped and
  coadded images correlate their noise).

It prints one table (median and 10th-90th percentiles per set, and the two-sample
Kolmogorov-Smirnov distance between simulated and real per camera) and writes one PNG per
statistic and `realism.json` to `--out`. Exit 2, with the reason, when a real set is missing or
unreadable. Pure: numpy, scipy, matplotlib (Agg), fastavro via the ingest's pure readers; no
Django.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import ks_2samp
from tqdm import tqdm

from labeling.ingest.base import InputError, RecordError, alert_cutouts, open_avro_container
from labeling.ingest.limits import IngestLimits
from simulation.triplets import INSTRUMENTS, generate_batch

ZTF_FILE = "ztf_real_triplets_300.npz"
RUBIN_FILE = "rubin_or4_v7_1_50_alerts.avro"
DEFAULT_REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
EXIT_BAD_INPUT = 2
BATCH = 500

CENTRAL_RADIUS = 4  # pixels: the central source's window for flux, width and centroid
PSF_MIN_SNR = 10.0  # the science's central peak over its sky noise, for a width to be measured
SKY_ROWS = 8  # the rows along each stamp's top and bottom edges taken as sky


@dataclass(frozen=True)
class Statistic:
    name: str
    label: str  # the axis label
    log: bool  # plotted on a log axis (positive, spans decades)


STATISTICS = (
    Statistic("difference_noise", "difference noise / science noise", True),
    Statistic("template_depth", "template noise / science noise", True),
    Statistic("nan_fraction", "fraction of pixels with no data", False),
    Statistic("central_snr", "difference central flux / noise (signed)", False),
    Statistic("psf_sigma", "science PSF sigma at the centre (px)", False),
    Statistic("centroid_offset", "difference centroid offset from the centre (px)", False),
    Statistic("template_correlation", "template noise correlation of neighbours", False),
)


# --- statistics of one stamp -------------------------------------------------------------


def _sky(image: np.ndarray) -> np.ndarray:
    rows = min(SKY_ROWS, image.shape[0] // 4)
    sky = np.concatenate([image[:rows].ravel(), image[-rows:].ravel()])
    return sky[np.isfinite(sky)]


def robust_sigma(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size < 10:
        return math.nan
    return float(np.median(np.abs(values - np.median(values))) / 0.6745)


def _neighbour_correlation(image: np.ndarray) -> float:
    rows = min(SKY_ROWS, image.shape[0] // 4)
    sky = image[:rows].astype(np.float64)
    if not np.isfinite(sky).all():
        return math.nan
    sigma = robust_sigma(sky)
    if not sigma > 0:
        return math.nan
    sky = np.clip(sky - np.median(sky), -4 * sigma, 4 * sigma)
    return float(np.corrcoef(sky[:, :-1].ravel(), sky[:, 1:].ravel())[0, 1])


def _central(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The window around the centre, and its pixels' offsets (rows, columns) from the centre."""
    h, w = image.shape
    cy, cx = h // 2, w // 2
    r = CENTRAL_RADIUS
    window = image[cy - r:cy + r + 1, cx - r:cx + r + 1].astype(np.float64)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    return window, dy.astype(np.float64), dx.astype(np.float64)


def stamp_statistics(cube: np.ndarray) -> dict[str, float]:
    """The STATISTICS of one (3, h, w) stamp (template, science, difference); NaN where a
    statistic cannot be measured on it."""
    template, science, difference = (np.asarray(image, np.float64) for image in cube)
    noise = {name: robust_sigma(_sky(image))
             for name, image in (("t", template), ("s", science), ("d", difference))}
    stats = {
        "difference_noise": noise["d"] / noise["s"] if noise["s"] > 0 else math.nan,
        "template_depth": noise["t"] / noise["s"] if noise["s"] > 0 else math.nan,
        "nan_fraction": float(np.isnan(cube).mean()),
        "template_correlation": _neighbour_correlation(template),
    }

    window, dy, dx = _central(difference)
    finite = np.isfinite(window)
    sky_d = np.median(_sky(difference)) if _sky(difference).size else 0.0
    signal = np.where(finite, window - sky_d, 0.0)
    flux = float(signal[np.hypot(dy, dx) <= 1.5].sum())
    aperture = int((np.hypot(dy, dx) <= 1.5).sum())
    stats["central_snr"] = (flux / (noise["d"] * math.sqrt(aperture)) if noise["d"] > 0
                            else math.nan)
    weight = np.clip(signal * np.sign(flux), 0.0, None)
    if weight.sum() > 0:
        stats["centroid_offset"] = float(math.hypot((weight * dy).sum() / weight.sum(),
                                                    (weight * dx).sum() / weight.sum()))
    else:
        stats["centroid_offset"] = math.nan

    window, dy, dx = _central(science)
    sky_s = np.median(_sky(science)) if _sky(science).size else 0.0
    source = np.where(np.isfinite(window), window - sky_s, 0.0)
    stats["psf_sigma"] = math.nan
    if noise["s"] > 0 and source[CENTRAL_RADIUS, CENTRAL_RADIUS] > PSF_MIN_SNR * noise["s"]:
        weight = np.clip(source, 0.0, None)
        total = weight.sum()
        my, mx = (weight * dy).sum() / total, (weight * dx).sum() / total
        variance = (weight * ((dy - my) ** 2 + (dx - mx) ** 2)).sum() / total / 2
        stats["psf_sigma"] = float(math.sqrt(variance))
    return stats


def statistics_of(cubes: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Each statistic over many stamps, as arrays (NaN where not measured)."""
    rows = [stamp_statistics(cube) for cube in cubes]
    return {s.name: np.array([row[s.name] for row in rows], np.float64) for s in STATISTICS}


# --- the sets --------------------------------------------------------------------------------


class RealDataError(Exception):
    """A real set is missing or unreadable."""


def load_ztf(folder: Path) -> list[np.ndarray]:
    path = folder / ZTF_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            stamps = data["stamps"]
    except (OSError, KeyError, ValueError) as exc:
        raise RealDataError(f"cannot read the real ZTF triplets {path}: {exc}") from exc
    if stamps.ndim != 4 or stamps.shape[1] != 3:
        raise RealDataError(f"{path}: stamps have shape {stamps.shape}, expected (N, 3, h, w)")
    return list(stamps)


def load_rubin(folder: Path) -> list[np.ndarray]:
    """The Rubin alerts' cutouts as (3, n, n) cubes, template, science, difference; an alert
    whose three cutouts differ in shape is cropped to the smallest, centred. An alert whose
    cutouts cannot be read is left out (and counted on stderr); none readable is an error."""
    path = folder / RUBIN_FILE
    cubes, unreadable = [], []
    try:
        with path.open("rb") as stream:
            # The shipped real data is read under the ingest's default caps.
            _, alerts = open_avro_container(stream, "lsst", IngestLimits())
            for number, alert in enumerate(alerts, 1):
                try:
                    cutouts = alert_cutouts(alert, lambda value: value, IngestLimits())
                except RecordError as exc:
                    unreadable.append(f"alert {number}: {exc}")
                    continue
                cubes.append(_stack([cutouts[kind].image
                                     for kind in ("template", "science", "difference")]))
    except (OSError, ValueError, InputError) as exc:
        raise RealDataError(f"cannot read the real Rubin alerts {path}: {exc}") from exc
    if unreadable:
        print(f"{len(unreadable)} Rubin alerts left out ({'; '.join(unreadable[:3])})",
              file=sys.stderr)
    if not cubes:
        raise RealDataError(f"no readable alert in {path}")
    return cubes


def _stack(images: Sequence[np.ndarray]) -> np.ndarray:
    h = min(image.shape[0] for image in images)
    w = min(image.shape[1] for image in images)

    def crop(image):
        top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        return image[top:top + h, left:left + w]

    return np.stack([crop(np.asarray(image, np.float32)) for image in images])


def simulated_by_instrument(n: int, seed: int, progress: Callable[[int], None] | None = None
                            ) -> dict[str, dict[str, np.ndarray]]:
    """Statistics of simulated subjects 0 .. n - 1 of `seed`, split by camera."""
    cubes: dict[str, list[np.ndarray]] = {name: [] for name in INSTRUMENTS}
    for start in range(0, n, BATCH):
        batch = generate_batch(seed, start, min(n, start + BATCH))
        for cube, instrument in zip(batch.cubes, batch.instruments, strict=True):
            cubes[instrument].append(cube)
        if progress:
            progress(len(batch))
    return {name: statistics_of(stack) for name, stack in cubes.items()}


# --- the comparison ---------------------------------------------------------------------------


def summarise(values: np.ndarray) -> dict[str, float | int | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"n": 0, "median": None, "p10": None, "p90": None}
    p10, median, p90 = np.percentile(finite, [10, 50, 90])
    return {"n": int(finite.size), "median": float(median), "p10": float(p10),
            "p90": float(p90)}


def ks_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 5 or b.size < 5:
        return None
    return float(ks_2samp(a, b).statistic)


def compare(sets: dict[str, dict[str, np.ndarray]]) -> dict:
    """{statistic: {"sets": {set: summary}, "ks": {camera: distance}}}; sets are named
    "simulated <camera>" and "real <camera>"."""
    report = {}
    for statistic in STATISTICS:
        per_set = {name: summarise(values[statistic.name]) for name, values in sets.items()}
        ks = {}
        for camera in INSTRUMENTS:
            sim, real = sets.get(f"simulated {camera}"), sets.get(f"real {camera}")
            if sim is not None and real is not None:
                ks[camera] = ks_distance(sim[statistic.name], real[statistic.name])
        report[statistic.name] = {"label": statistic.label, "sets": per_set, "ks": ks}
    return report


def format_report(report: dict) -> str:
    names = list(next(iter(report.values()))["sets"])
    lines = []
    for name, entry in report.items():
        ks = ", ".join(f"{camera} {value:.2f}" for camera, value in entry["ks"].items()
                       if value is not None)
        lines.append(f"{entry['label']} [{name}]" + (f"  (KS sim vs real: {ks})" if ks else ""))
        for set_name in names:
            row = entry["sets"][set_name]
            if row["n"] == 0:
                lines.append(f"  {set_name:<18} n/a")
                continue
            lines.append(f"  {set_name:<18} median {row['median']:>9.3g}   "
                         f"10-90%: {row['p10']:>9.3g} .. {row['p90']:<9.3g}  (n={row['n']})")
    return "\n".join(lines)


# --- plots -------------------------------------------------------------------------------------

# Okabe-Ito: simulated in solid lines, real in dashed, one colour per camera.
_CAMERA_COLOURS = {"rubin": "#0072B2", "ztf": "#D55E00"}


def plot_statistic(statistic: Statistic, sets: dict[str, dict[str, np.ndarray]]) -> bytes:
    figure = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    finite = {name: values[statistic.name][np.isfinite(values[statistic.name])]
              for name, values in sets.items()}
    if statistic.log:
        finite = {name: v[v > 0] for name, v in finite.items()}
    pooled = np.concatenate([v for v in finite.values() if v.size] or [np.zeros(1)])
    low, high = np.percentile(pooled, [1, 99]) if pooled.size > 1 else (0.0, 1.0)
    if statistic.log:
        bins = np.geomspace(max(low, 1e-6), max(high, low * 1.01, 1e-5), 30)
        ax.set_xscale("log")
    else:
        bins = np.linspace(low, high if high > low else low + 1.0, 30)
    for name, values in finite.items():
        if not values.size:
            continue
        kind, camera = name.split(" ", 1)
        ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, density=True, histtype="step",
                linewidth=1.8, color=_CAMERA_COLOURS.get(camera, "#000000"),
                linestyle="-" if kind == "simulated" else "--", label=f"{name} ({values.size})")
    ax.set_xlabel(statistic.label)
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


# --- the command ---------------------------------------------------------------------------


def run(n: int, seed: int, realdata: Path, out: Path) -> dict:
    """Compute, print nothing, write the plots and realism.json; return the report."""
    real = {"real ztf": statistics_of(load_ztf(realdata)),
            "real rubin": statistics_of(load_rubin(realdata))}
    with tqdm(total=n, unit="subject", desc="simulate", file=sys.stderr, disable=None) as bar:
        simulated = simulated_by_instrument(n, seed, bar.update)
    sets = {f"simulated {camera}": values for camera, values in simulated.items()} | real
    report = compare(sets)
    out.mkdir(parents=True, exist_ok=True)
    for statistic in STATISTICS:
        (out / f"{statistic.name}.png").write_bytes(plot_statistic(statistic, sets))
    (out / "realism.json").write_text(json.dumps(
        {"simulated_subjects": n, "seed": seed, "statistics": report}, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulation.realism", description=(
        "Compare simulated stamps with the real ZTF and Rubin stamps on summary statistics "
        "(noise, NaN fraction, flux, PSF width, centroid offset), with plots."))
    parser.add_argument("--n", type=int, default=2000, help="simulated subjects (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--realdata", type=Path, default=DEFAULT_REALDATA,
                        help=f"folder of the real sets (default {DEFAULT_REALDATA})")
    parser.add_argument("--out", type=Path, default=Path(".realism"),
                        help="folder for the plots and realism.json (default .realism)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.seed < 0:
        print("error: --n must be >= 1 and --seed >= 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        report = run(args.n, args.seed, args.realdata, args.out)
    except RealDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"Simulated ({args.n} subjects, seed {args.seed}) against real stamps:")
    print(format_report(report))
    print(f"{len(STATISTICS)} plots and realism.json in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
