"""Synthetic difference-image-analysis (DIA) triplets with known truth.

Each subject is a detection at the centre pixel (size // 2) of three stamps: a template (a
deep coadd), a science image (one visit) and their difference, science minus the template
convolved to the science seeing. The truth is known because we put it there; the demo,
the tests and the benchmarks all use this.

Physics, in brief:
- Cameras (`INSTRUMENTS`). Each subject is seen by Rubin (0.2"/px, seeing 0.55-1.4",
  background-subtracted cutouts) or ZTF (1"/px, seeing 1.6-3.4", science and reference cutouts
  that keep their sky level), 60:40. Sky and saturation per pixel scale with the pixel's
  area; galaxy sizes and asteroid trails are drawn in arcseconds.
- Units. Pixels are in nJy. The gain is taken as 1 electron per nJy (roughly right for a
  30 s Rubin visit), so the Poisson variance of a pixel is sky + source in the same units.
- PSFs are a Gaussian core plus a wider Gaussian wing (0-25% of the flux, 3-6 times the
  core's variance) whose seeing varies per subject; the template's seeing is always better,
  so DIA convolves the template with the Gaussian kernel that matches it to the science
  (Alard-Lupton with one Gaussian; the template's wing is built so that it matches too).
  The science PSF is rendered a little wider or narrower than the pipeline believes, so
  bright sources leave the ring residuals real subtractions leave.
- Backgrounds: a plane of up to `BACKGROUND_GRADIENT_SIGMAS` sky sigmas at the stamp edge
  in both images, 97-103% of it in the template, so the difference keeps a trace of it.
- Noise is correlated between neighbouring pixels, as warping and coadding leave it: the
  white noise is smoothed by [c, 1, c] along both axes, c in `NOISE_CORRELATION_SCIENCE`
  and (more) `NOISE_CORRELATION_TEMPLATE`; the PSF-flux errors account for it.
- Galaxies are exponential discs drawn as a mixture of three Gaussians (so convolving with
  a Gaussian PSF is exact), with axes along the pixel grid: every source is separable,
  which is what lets a whole batch render as one stack of matrix products.
- Noise is Gaussian with the Poisson variance. The template is `TEMPLATE_DEPTH` times
  deeper (lower variance) than the science. The difference's noise is the real thing:
  science noise plus the template noise smoothed by the matching kernel.
- Detector effects (cosmic rays, hot pixels, bad rows and columns) are added after the
  photon noise; saturation clips both images at a full well that varies per subject
  (`SATURATION_NJY` times `SATURATION_SPREAD`), and saturated stars bleed along their
  column in the science; NaN is "no data".

The kinds. Real: `transient` (a point source new in the science, often on a host galaxy),
`variable` (a star brighter in the science), `variable_residual` (a star that brightened
or faded, subtracted imperfectly: its quiescent light leaves PSF-shaped positive and
negative residuals, a lopsided pair from a slight offset or a ring from a PSF a few percent
off, on top of a net change; DMTN-337's experts label such Gaia variables Real), `fading`
(a source weaker in the science than in the template: a negative PSF in the difference),
`moving` (an asteroid: in the science only, sometimes trailed). Bogus: `dipole` (the
science misregistered against the template by a fraction of a pixel, so every source
leaves a positive and a negative lobe of equal flux, no net flux: that, and only that, is a
Bogus dipole; the stamp is centred on the positive lobe, where the detection would be),
`bright_star`
(saturated cores, a bleed trail, rings), `cosmic_ray` (a sharp one to three pixel streak),
`satellite` (a line across the stamp), `bad_column` (a hot row or column, sometimes with
a masked NaN neighbour) and `hot_pixel`. Any subject may also carry incidental defects
away from its centre: stray cosmic rays, a NaN row or column, a NaN strip at a detector
edge, a saturated neighbour with its bleed trail 8 or more columns away; so NaN or a
saturated column alone never gives the answer away.

Origins and truth. Origins are drawn in the proportions of the Rubin Difference
Detectives sample (DMTN-337, table 3). The kind mix of each origin (`KIND_MIX`) is set so
that, like DMTN-337 figure 5, about 46% of subjects are real, most of the real ones are
solar-system movers (`ss`: 92% real), and most of the bogus ones are bad subtractions of
Gaia stars (`gaia`: 10% real, the rest dipoles and saturated-star residuals);
`reliability_cuts` (sources the v0.1 model scored 0.5-0.9) is 30% real and holds every
artefact kind, `galaxy` (extended sources) is half transients and half misregistered
nuclei, and `tns` (known transients) is 95% real.

Signal to noise. Each subject draws a target SNR log-uniformly in `SNR_RANGE` and scales
its signal so that the PSF flux measured at the centre of the noiseless difference has
that SNR (bright stars are the exception: their brightness is set by how far past
saturation they go). The reported `psf_flux` and `psf_flux_err` are then measured on the
noisy difference as a pipeline does (a PSF-weighted sum and the error from the variance
plane, NaN pixels left out), so `snr = psf_flux / psf_flux_err` is consistent with the
pixels, and negative for fading sources.

Determinism. Subject `index` of `seed` is drawn from `np.random.default_rng([seed, index])`
and rendered with operations that act on each subject on its own, so a subject's pixels
depend only on (seed, index, size): any prefix, any batch, the same arrays.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from labeling.records import SubjectRecord

# Bump when the same (seed, index, size) would give different pixels or fields.
SIMULATOR_VERSION = 2

# DMTN-337 table 3, rounded: 88,058 ss, 89,410 gaia, 49,933 reliability_cuts, 10,932
# galaxy and 2,058 tns of 242,391 subjects.
ORIGIN_PROPORTIONS: Mapping[str, float] = {
    "ss": 0.36,
    "gaia": 0.37,
    "reliability_cuts": 0.21,
    "galaxy": 0.05,
    "tns": 0.01,
}

# The subject metadata key where the simulator stores each subject's truth ("real"/"bogus").
TRUTH_METADATA_KEY = "sim_truth"

KIND_TRUTH: Mapping[str, str] = {
    "transient": "real",
    "variable": "real",
    "variable_residual": "real",
    "fading": "real",
    "moving": "real",
    "dipole": "bogus",
    "bright_star": "bogus",
    "cosmic_ray": "bogus",
    "satellite": "bogus",
    "bad_column": "bogus",
    "hot_pixel": "bogus",
}

# What each kind is, in words a volunteer can check against the stamps: the feedback text
# of a simulated reference label.
KIND_EXPLANATION: Mapping[str, str] = {
    "transient": "a new point source: in the science image but not the template, "
                 "sometimes on a host galaxy",
    "variable": "a variable star: the same star in both images, brighter in the science image",
    "variable_residual": "a variable star whose subtraction is imperfect: a positive and a "
                         "negative PSF-shaped residual (a ring or a lopsided pair) around a "
                         "clear net brightening or fading; the change is real",
    "fading": "a source fading since the template: a real negative point source in the "
              "difference image",
    "moving": "an asteroid: a point source in the science image only, sometimes drawn out "
              "into a short trail",
    "dipole": "a dipole from misalignment: the science image is shifted against the "
              "template, leaving a positive and a negative lobe side by side",
    "bright_star": "a saturated bright star that does not subtract cleanly: rings around the "
                   "core and a bleed trail along the column",
    "cosmic_ray": "a cosmic ray: a sharp streak of one to three pixels in the science image, "
                  "narrower than any star",
    "satellite": "a satellite trail: a straight line across the whole stamp",
    "bad_column": "a hot row or column of the detector: a straight line one pixel wide, "
                  "not a source",
    "hot_pixel": "a hot pixel: one bright pixel, far sharper than any star",
}

# Pr(kind | origin); see the module docstring for why.
KIND_MIX: Mapping[str, Mapping[str, float]] = {
    "ss": {
        "moving": 0.92,
        "cosmic_ray": 0.03, "satellite": 0.02, "hot_pixel": 0.01, "dipole": 0.01,
        "bad_column": 0.01,
    },
    "gaia": {
        "variable": 0.03, "variable_residual": 0.05, "fading": 0.02,
        "dipole": 0.45, "bright_star": 0.37, "cosmic_ray": 0.03, "bad_column": 0.03,
        "hot_pixel": 0.02,
    },
    "reliability_cuts": {
        "transient": 0.12, "variable": 0.04, "variable_residual": 0.05, "fading": 0.05,
        "moving": 0.06, "dipole": 0.18, "bright_star": 0.08, "cosmic_ray": 0.14, "satellite": 0.08,
        "bad_column": 0.10, "hot_pixel": 0.10,
    },
    "galaxy": {
        "transient": 0.38, "fading": 0.12,
        "dipole": 0.38, "cosmic_ray": 0.07, "hot_pixel": 0.05,
    },
    "tns": {"transient": 0.80, "fading": 0.15, "dipole": 0.05},
}

# Pr(a galaxy near the centre | origin): the host of a transient, a chance alignment
# for the other kinds. `galaxy` subjects are matches to extended sources by definition.
HOST_PROBABILITY: Mapping[str, float] = {
    "ss": 0.05, "gaia": 0.05, "reliability_cuts": 0.3, "galaxy": 1.0, "tns": 0.85,
}

# Roughly the share of LSST visits per filter.
BAND_PROPORTIONS: Mapping[str, float] = {
    "u": 0.07, "g": 0.10, "r": 0.22, "i": 0.22, "z": 0.20, "y": 0.19,
}


@dataclass(frozen=True)
class Instrument:
    """What sets a subject's pixels apart by camera: the pixel scale and the seeing there."""

    pixel_scale_arcsec: float
    seeing_fwhm_arcsec: tuple[float, float]  # science seeing, uniform
    sky_pedestal: bool  # are science and template stamps shipped with their sky level?


# Rubin's LSSTCam (0.2"/px, background-subtracted cutouts) and ZTF (1"/px, 2" median
# seeing, science and reference cutouts with their sky), in these proportions.
INSTRUMENTS: Mapping[str, Instrument] = {
    "rubin": Instrument(0.2, (0.55, 1.4), sky_pedestal=False),
    "ztf": Instrument(1.0, (1.6, 3.4), sky_pedestal=True),
}
INSTRUMENT_PROPORTIONS: Mapping[str, float] = {"rubin": 0.6, "ztf": 0.4}
# Sky and saturation are quoted per Rubin pixel and scale with the pixel's area on the sky.
REFERENCE_PIXEL_SCALE = INSTRUMENTS["rubin"].pixel_scale_arcsec
TEMPLATE_SEEING_RATIO = (0.6, 0.95)  # template seeing / science seeing, uniform
SKY_NJY_PER_PIXEL = (300.0, 3000.0)  # log-uniform
TEMPLATE_DEPTH = (4.0, 25.0)  # science variance / template variance, uniform
SATURATION_NJY = 1.2e5  # nominal full well; each subject's is this times SATURATION_SPREAD
SATURATION_SPREAD = (0.6, 1.6)  # log-uniform
# The PSF: a Gaussian core plus a wider Gaussian wing (a Moffat-like halo) of this weight and
# variance ratio (wing / core in the science), both uniform. The template's wing is narrower
# by what the matching kernel adds, so matching maps the template's PSF onto the science's
# and only the PSF mismatches of the kinds leave residuals.
PSF_WING_WEIGHT = (0.0, 0.25)
PSF_WING_VARIANCE_RATIO = (3.0, 6.0)
# Warping to a common grid and coadding correlate neighbouring pixels' noise: each image's
# noise is smoothed by the kernel [c, 1, c] along rows and columns (normalised to keep the
# variance), c uniform in these ranges. Real ZTF cutouts: neighbouring pixels correlate by
# about 0 in the science and 0.4 (0.14-0.86) in the reference; c = 0.35 gives 0.57.
NOISE_CORRELATION_SCIENCE = (0.0, 0.05)
NOISE_CORRELATION_TEMPLATE = (0.05, 0.35)
# Imperfect background subtraction: a plane across science and template of up to this many
# sky-noise sigmas at the stamp edge, uniform, and left in the difference to this fraction.
BACKGROUND_GRADIENT_SIGMAS = 0.3
BACKGROUND_RESIDUAL_FRACTION = 0.03
INCIDENTAL_SATURATED_STAR = 0.04  # Pr(a saturated field star with a bleed trail off centre)
SNR_RANGE = (3.0, 1000.0)  # log-uniform target SNR of the detection
MIN_SIZE = 15
BATCH_SIZE = 64

MAX_FIELD_STARS = 4
MAX_FIELD_GALAXIES = 2
MAX_TRAIL_ARCSEC = 1.2  # the longest asteroid trail in one exposure
MAX_TRAIL_PIXELS = MAX_TRAIL_ARCSEC / REFERENCE_PIXEL_SCALE

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
# An exponential disc of scale length h as (weight, sigma / h) of three Gaussians, fitted
# by least squares to the radial profile (within ~10% of the peak everywhere).
_EXPONENTIAL_MOG = ((0.036, 0.33), (0.333, 0.91), (0.631, 1.91))
# Template pixels needed beyond each edge so the matching convolution sees real sky: four
# sigmas of the widest matching kernel the seeing ranges allow.
_PAD = math.ceil(max(
    4 * instrument.seeing_fwhm_arcsec[1] / _FWHM_PER_SIGMA / instrument.pixel_scale_arcsec
    * math.sqrt(1 - TEMPLATE_SEEING_RATIO[0] ** 2)
    for instrument in INSTRUMENTS.values()
))
# A fixed number of component slots, so a subject renders the same way in any batch.
_MAX_COMPONENTS = (
    MAX_FIELD_STARS + len(_EXPONENTIAL_MOG) * (MAX_FIELD_GALAXIES + 1)
    + math.ceil(MAX_TRAIL_PIXELS) + 1 + 1  # the last: a saturated neighbour
)
_OBLIQUITY = math.radians(23.44)
_RUBIN_MAX_DEC = math.radians(12.0)

# A Gaussian component: (flux, x, y, intrinsic variance along x, along y), before the PSF.
_Component = tuple[float, float, float, float, float]


@dataclass(frozen=True)
class SimulatedSubject:
    """One simulated detection: the record to ingest, and what it really is."""

    record: SubjectRecord
    truth: str
    kind: str


@dataclass(frozen=True)
class SimulatedBatch:
    """Subjects `start` .. `start + len(self) - 1` of `seed`, as arrays.

    `cubes` is float32 (n, 3, size, size): template, science, difference. The per-subject
    arrays are float64 of length n; `psf_flux` and `psf_flux_err` are in nJy.
    """

    seed: int
    start: int
    cubes: np.ndarray
    kinds: tuple[str, ...]
    origins: tuple[str, ...]
    bands: tuple[str, ...]
    snr: np.ndarray
    psf_flux: np.ndarray
    psf_flux_err: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    seeing_arcsec: np.ndarray
    template_seeing_arcsec: np.ndarray
    instruments: tuple[str, ...]  # keys of INSTRUMENTS
    pixel_scale_arcsec: np.ndarray

    def __len__(self) -> int:
        return len(self.kinds)

    @property
    def truths(self) -> tuple[str, ...]:
        return tuple(KIND_TRUTH[kind] for kind in self.kinds)

    def subjects(self) -> Iterator[SimulatedSubject]:
        """The batch as subjects; their stamps are views into `cubes`."""
        for i, kind in enumerate(self.kinds):
            index = self.start + i
            record = SubjectRecord(
                external_id=f"sim-{self.seed}-{index}",
                template=self.cubes[i, 0],
                science=self.cubes[i, 1],
                difference=self.cubes[i, 2],
                source=f"simulated[{index}]",
                origin=self.origins[i],
                snr=float(self.snr[i]),
                psf_flux=float(self.psf_flux[i]),
                psf_flux_err=float(self.psf_flux_err[i]),
                ra=float(self.ra[i]),
                dec=float(self.dec[i]),
                band=self.bands[i],
                # Observing conditions only: nothing here may hint at the truth or kind.
                metadata={
                    "simulator_version": SIMULATOR_VERSION,
                    "seeing_arcsec": round(float(self.seeing_arcsec[i]), 3),
                    "template_seeing_arcsec": round(float(self.template_seeing_arcsec[i]), 3),
                    "pixel_scale_arcsec": float(self.pixel_scale_arcsec[i]),
                },
            )
            yield SimulatedSubject(record=record, truth=KIND_TRUTH[kind], kind=kind)


def generate_subjects(n: int, seed: int, size: int = 51) -> Iterator[SimulatedSubject]:
    """Subjects 0 .. n - 1 of `seed`, generated lazily `BATCH_SIZE` at a time."""
    _check_count(n, "n")
    for start in range(0, n, BATCH_SIZE):
        yield from generate_batch(seed, start, min(n, start + BATCH_SIZE), size).subjects()


def generate_batch(seed: int, start: int, stop: int, size: int = 51) -> SimulatedBatch:
    """Subjects `start` .. `stop - 1` of `seed`, rendered together.

    Rendering takes about 0.3 MB a subject at size 51 (31 kB of which is kept in `cubes`):
    generate a large sample in slices of a few thousand, as `generate_subjects` does.
    """
    _check_count(seed, "seed")
    _check_count(start, "start")
    _check_count(stop - start, "stop - start")
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    n = stop - start
    padded = size + 2 * _PAD
    pixels = padded**2 + size**2  # template (padded for the matching) and science noise
    uniform = np.empty((n, 2, (pixels + 1) // 2), dtype=np.float32)
    scenes = []
    for i, index in enumerate(range(start, stop)):
        rng = np.random.default_rng([seed, index])
        scenes.append(_draw_scene(rng, size))
        # Noise last: its draws then cannot shift any scene parameter.
        rng.random(dtype=np.float32, out=uniform[i])
    noise = _standard_normal(uniform)
    noise_tmp = noise[:, : padded**2].reshape(n, padded, padded)
    noise_sci = noise[:, padded**2 : pixels].reshape(n, size, size)
    cubes, psf_flux, psf_flux_err = _render_batch(scenes, noise_tmp, noise_sci, size)
    pixel_scale = np.array([s.pixel_scale for s in scenes])
    seeing = np.array([s.sigma_sci for s in scenes]) * _FWHM_PER_SIGMA * pixel_scale
    template_seeing = np.array([s.sigma_tmp for s in scenes]) * _FWHM_PER_SIGMA * pixel_scale
    return SimulatedBatch(
        seed=seed,
        start=start,
        cubes=cubes,
        kinds=tuple(s.kind for s in scenes),
        origins=tuple(s.origin for s in scenes),
        bands=tuple(s.band for s in scenes),
        snr=psf_flux / psf_flux_err,
        psf_flux=psf_flux,
        psf_flux_err=psf_flux_err,
        ra=np.array([s.ra for s in scenes]),
        dec=np.array([s.dec for s in scenes]),
        seeing_arcsec=seeing,
        template_seeing_arcsec=template_seeing,
        instruments=tuple(s.instrument for s in scenes),
        pixel_scale_arcsec=pixel_scale,
    )


def _check_count(value: int, name: str) -> None:
    if not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


# --- drawing one subject -----------------------------------------------------------------


@dataclass
class _Scene:
    """Everything drawn for one subject, before any pixel exists."""

    size: int
    origin: str
    kind: str
    band: str
    ra: float
    dec: float
    sigma_sci: float  # the science PSF the pipeline believes in (matching, photometry)
    sigma_render: float  # the science PSF the sky delivered
    sigma_tmp: float
    sky: float
    depth: float
    instrument: str = "rubin"
    saturation: float = SATURATION_NJY
    wing_weight: float = 0.0  # the PSF's wing: its share of the flux ...
    wing_ratio: float = 1.0  # ... and its variance over the core's
    correlation_sci: float = 0.0  # c of the noise-smoothing kernel [c, 1, c]
    correlation_tmp: float = 0.0
    # Background planes (value at the centre, slope along x, along y), per pixel.
    background_sci: tuple[float, float, float] = (0.0, 0.0, 0.0)
    background_tmp: tuple[float, float, float] = (0.0, 0.0, 0.0)
    template: list[_Component] = field(default_factory=list)
    science: list[_Component] = field(default_factory=list)
    # (angle, perpendicular offset from the centre, profile variance, flux per unit length)
    satellite: tuple[float, float, float, float] | None = None
    # Science detector effects, added after the photon noise: (row, column, value) hits and
    # (axis, index, value) whole rows (axis 0) or columns (axis 1); a NaN value masks.
    hits: list[tuple[int, int, float]] = field(default_factory=list)
    science_lines: list[tuple[int, int, float]] = field(default_factory=list)
    # (axis, index) rows or columns with no template data.
    template_lines: list[tuple[int, int]] = field(default_factory=list)
    # (column, first row, last row) of the science set to saturation by bleeding charge.
    bleeds: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def centre(self) -> int:
        return self.size // 2

    @property
    def pixel_scale(self) -> float:
        return INSTRUMENTS[self.instrument].pixel_scale_arcsec

    def psf_mix(self, core_var: float) -> tuple[tuple[float, float], ...]:
        """The PSF of core variance `core_var` as (weight, variance) Gaussians."""
        return ((1.0 - self.wing_weight, core_var),
                (self.wing_weight, core_var + self.wing_extra))

    @property
    def wing_extra(self) -> float:
        """What the wing's variance adds to the core's, the same in every image."""
        return (self.wing_ratio - 1.0) * self.sigma_sci**2

    @property
    def background_flux_error(self) -> float:
        """PSF-flux error on the difference from the sky alone: sqrt(4 pi sigma^2 var)."""
        return math.sqrt(4 * math.pi * self.sigma_sci**2 * self.sky * (1 + 1 / self.depth))


def _cumulative(proportions: Mapping[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    sums = list(itertools.accumulate(proportions.values()))
    return tuple(proportions), tuple(s / sums[-1] for s in sums)


_ORIGIN_TABLE = _cumulative(ORIGIN_PROPORTIONS)
_KIND_TABLES = {origin: _cumulative(mix) for origin, mix in KIND_MIX.items()}
_BAND_TABLE = _cumulative(BAND_PROPORTIONS)
_INSTRUMENT_TABLE = _cumulative(INSTRUMENT_PROPORTIONS)


def _pick(rng: np.random.Generator, table: tuple[tuple[str, ...], tuple[float, ...]]) -> str:
    # bisect on a cumulative table: rng.choice costs ~5 us a call, a tenth of a subject.
    names, cumulative = table
    return names[bisect.bisect_right(cumulative, rng.random())]


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return low + (high - low) * rng.random()


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return low * (high / low) ** rng.random()


def _draw_scene(rng: np.random.Generator, size: int) -> _Scene:
    origin = _pick(rng, _ORIGIN_TABLE)
    kind = _pick(rng, _KIND_TABLES[origin])
    band = _pick(rng, _BAND_TABLE)
    ra, dec = _sky_position(rng, near_ecliptic=origin == "ss")
    instrument_name = _pick(rng, _INSTRUMENT_TABLE)
    instrument = INSTRUMENTS[instrument_name]
    area = (instrument.pixel_scale_arcsec / REFERENCE_PIXEL_SCALE) ** 2
    sigma_sci = (_uniform(rng, *instrument.seeing_fwhm_arcsec) / _FWHM_PER_SIGMA
                 / instrument.pixel_scale_arcsec)
    scene = _Scene(
        size=size,
        origin=origin,
        kind=kind,
        band=band,
        ra=ra,
        dec=dec,
        sigma_sci=sigma_sci,
        sigma_render=sigma_sci * (1 + _uniform(rng, -0.02, 0.02)),
        sigma_tmp=sigma_sci * _uniform(rng, *TEMPLATE_SEEING_RATIO),
        sky=_log_uniform(rng, *SKY_NJY_PER_PIXEL) * area,
        depth=_uniform(rng, *TEMPLATE_DEPTH),
        instrument=instrument_name,
        saturation=SATURATION_NJY * area * _log_uniform(rng, *SATURATION_SPREAD),
        wing_weight=_uniform(rng, *PSF_WING_WEIGHT),
        wing_ratio=_uniform(rng, *PSF_WING_VARIANCE_RATIO),
        correlation_sci=_uniform(rng, *NOISE_CORRELATION_SCIENCE),
        correlation_tmp=_uniform(rng, *NOISE_CORRELATION_TEMPLATE),
    )
    _add_background(rng, scene, instrument.sky_pedestal)
    _add_field(rng, scene)
    snr = _log_uniform(rng, *SNR_RANGE)
    _KIND_BUILDERS[kind](rng, scene, _flux_for_snr(scene, snr))
    _add_incidental_defects(rng, scene)
    return scene


def _add_background(rng: np.random.Generator, scene: _Scene, pedestal: bool) -> None:
    """The sky left in the stamps: a pedestal where the camera ships it (ZTF's science and
    reference cutouts), which the difference cancels, and a gradient in both images, which it
    mostly cancels."""
    edge = BACKGROUND_GRADIENT_SIGMAS * math.sqrt(scene.sky) / (scene.size / 2)
    slope_x, slope_y = (_uniform(rng, -edge, edge) for _ in range(2))
    level = scene.sky if pedestal else 0.0
    residual = 1.0 + _uniform(rng, -BACKGROUND_RESIDUAL_FRACTION, BACKGROUND_RESIDUAL_FRACTION)
    scene.background_sci = (level, slope_x, slope_y)
    scene.background_tmp = (level, slope_x * residual, slope_y * residual)


def _sky_position(rng: np.random.Generator, near_ecliptic: bool) -> tuple[float, float]:
    """(ra, dec) in degrees: uniform over the Rubin sky, or near the ecliptic for asteroids."""
    if near_ecliptic:
        lon = _uniform(rng, 0, 2 * math.pi)
        lat = math.radians(rng.normal(0.0, 8.0))
        sin_dec = (
            math.sin(lat) * math.cos(_OBLIQUITY)
            + math.cos(lat) * math.sin(_OBLIQUITY) * math.sin(lon)
        )
        ra = math.atan2(
            math.sin(lon) * math.cos(_OBLIQUITY) - math.tan(lat) * math.sin(_OBLIQUITY),
            math.cos(lon),
        )
        return math.degrees(ra) % 360.0, math.degrees(math.asin(sin_dec))
    sin_dec = _uniform(rng, -1.0, math.sin(_RUBIN_MAX_DEC))
    return _uniform(rng, 0.0, 360.0), math.degrees(math.asin(sin_dec))


def _flux_for_snr(scene: _Scene, snr: float) -> float:
    """The flux F with F / sqrt(B^2 + F) = snr: sky noise B plus the source's own Poisson."""
    s2 = snr * snr
    return 0.5 * (s2 + math.sqrt(s2 * s2 + 4 * s2 * scene.background_flux_error**2))


def _point(flux: float, x: float, y: float) -> _Component:
    return (flux, x, y, 0.0, 0.0)


def _galaxy(rng: np.random.Generator, flux: float, x: float, y: float,
            scale: float) -> list[_Component]:
    """An exponential disc of scale length `scale` px, its long axis along x or y."""
    axis_ratio = _uniform(rng, 0.3, 1.0)
    x_is_long = rng.random() < 0.5
    components = []
    for weight, width in _EXPONENTIAL_MOG:
        long_var = (width * scale) ** 2
        short_var = long_var * axis_ratio**2
        var_x, var_y = (long_var, short_var) if x_is_long else (short_var, long_var)
        components.append((flux * weight, x, y, var_x, var_y))
    return components


def _away_from_centre(rng: np.random.Generator, scene: _Scene,
                      min_distance: float) -> tuple[float, float]:
    """A uniform position on the padded template area at least `min_distance` from the centre."""
    while True:
        x = _uniform(rng, -_PAD, scene.size + _PAD)
        y = _uniform(rng, -_PAD, scene.size + _PAD)
        if math.hypot(x - scene.centre, y - scene.centre) >= min_distance:
            return x, y


def _near_centre(rng: np.random.Generator, scene: _Scene) -> tuple[float, float]:
    """A position inside the centre pixel: where the detection's centroid fell."""
    return (scene.centre + _uniform(rng, -0.3, 0.3), scene.centre + _uniform(rng, -0.3, 0.3))


def _add_field(rng: np.random.Generator, scene: _Scene) -> None:
    """Stars and galaxies that are the same in both images (they subtract away)."""
    noise = scene.background_flux_error
    # Galaxy sizes are drawn in Rubin pixels (0.2"): on coarser pixels they are smaller.
    to_pixels = REFERENCE_PIXEL_SCALE / scene.pixel_scale
    sources = []
    for _ in range(min(int(rng.poisson(1.0)), MAX_FIELD_STARS)):
        x, y = _away_from_centre(rng, scene, 5.0)
        sources.append(_point(noise * _log_uniform(rng, 5.0, 500.0), x, y))
    for _ in range(min(int(rng.poisson(0.3)), MAX_FIELD_GALAXIES)):
        x, y = _away_from_centre(rng, scene, 5.0)
        scale = _log_uniform(rng, 1.0, 3.0) * to_pixels
        sources += _galaxy(rng, noise * _log_uniform(rng, 10.0, 300.0), x, y, scale)
    if rng.random() < HOST_PROBABILITY[scene.origin]:
        scale = _log_uniform(rng, 1.5, 6.0) * to_pixels
        offset = scale * _uniform(rng, 0.0, 1.5)
        angle = _uniform(rng, 0.0, 2 * math.pi)
        x = scene.centre + offset * math.cos(angle)
        y = scene.centre + offset * math.sin(angle)
        sources += _galaxy(rng, noise * _log_uniform(rng, 20.0, 2000.0), x, y, scale)
    scene.template += sources
    scene.science += sources


def _gauss(d: float, var: float) -> float:
    return math.exp(-0.5 * d * d / var) / math.sqrt(2 * math.pi * var)


def _response(scene: _Scene, components: list[_Component], psf_var: float) -> float:
    """PSF flux measured at the centre for `components` rendered with the PSF of core variance
    `psf_var` (and the scene's wing).

    The measurement is sum(P * image) / sum(P^2) with P the unit PSF the pipeline believes
    in; for Gaussians both sums are closed forms, and sum(P^2) = 1 / (4 pi sigma^2).
    """
    var = scene.sigma_sci**2
    c = scene.centre
    return 4 * math.pi * var * sum(
        weight * flux * _gauss(x - c, var_x + mix_var + var) * _gauss(y - c, var_y + mix_var + var)
        for flux, x, y, var_x, var_y in components
        for weight, mix_var in scene.psf_mix(psf_var)
    )


def _pixel_response(scene: _Scene, row: int, column: int) -> float:
    """PSF flux measured at the centre for a unit value in one pixel."""
    var = scene.sigma_sci**2
    c = scene.centre
    return 4 * math.pi * var * _gauss(row - c, var) * _gauss(column - c, var)


def _scaled(component: _Component, factor: float) -> _Component:
    flux, *shape = component
    return (flux * factor, *shape)


def _add_signal(scene: _Scene, flux: float, science: list[_Component],
                template: list[_Component], max_factor: float = math.inf) -> None:
    """Add the given unit components, scaled so the difference measures `flux` at the centre.

    The scale factor is capped at `max_factor`.
    """
    response = (_response(scene, science, scene.sigma_render**2)
                - _response(scene, template, scene.sigma_sci**2))
    factor = min(flux / response, max_factor)
    scene.science += [_scaled(c, factor) for c in science]
    scene.template += [_scaled(c, factor) for c in template]


# --- the kinds: each adds its signal so the difference measures `flux` at the centre ---


def _transient(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    x, y = _near_centre(rng, scene)
    _add_signal(scene, flux, [_point(1.0, x, y)], [])


def _variable(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    x, y = _near_centre(rng, scene)
    quiescent = _log_uniform(rng, 0.3, 10.0)  # template flux in units of the brightening
    _add_signal(scene, flux, [_point(1.0 + quiescent, x, y)], [_point(quiescent, x, y)])


def _variable_residual(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    """A star that really changed, subtracted imperfectly: its quiescent light, several times
    the change, leaves a PSF-shaped positive and negative residual on top of the net change.
    The science copy sits a little off the template's (an astrometric residual: a lopsided
    pair of lobes), or has a PSF a few percent off (a ring), or both. Unlike a misregistration
    dipole, the net flux is not zero: DMTN-337's experts label such Gaia variables Real."""
    x, y = _near_centre(rng, scene)
    quiescent = _log_uniform(rng, 2.0, 30.0)  # template flux in units of the change
    style = rng.random()
    dx = dy = 0.0
    if style < 0.7:  # offset, alone or with a ring
        offset = _uniform(rng, 0.05, 0.25) * scene.sigma_sci
        angle = _uniform(rng, 0.0, 2 * math.pi)
        dx, dy = offset * math.cos(angle), offset * math.sin(angle)
    if style > 0.4:  # a ring, alone or with an offset
        mismatch = _uniform(rng, 0.03, 0.08) * (1 if rng.random() < 0.5 else -1)
        scene.sigma_render = scene.sigma_sci * (1 + mismatch)
    sign = 1.0 if rng.random() < 0.7 else -1.0  # ZTF's alerts: ~70% brighter than template
    # What the quiescent light leaves at the centre, per unit: where it opposes the change,
    # keep it to half the change's own, so the change is what is detected.
    change = _response(scene, [_point(1.0, x + dx, y + dy)], scene.sigma_render**2)
    residual = change - _response(scene, [_point(1.0, x, y)], scene.sigma_sci**2)
    if residual * sign < 0:
        quiescent = min(quiescent, 0.5 * change / abs(residual))
    science = [_point(quiescent + sign, x + dx, y + dy)]
    template = [_point(quiescent, x, y)]
    _add_signal(scene, sign * flux, science, template)


def _fading(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    x, y = _near_centre(rng, scene)
    left = _uniform(rng, 0.0, 0.7)  # the fraction of the template flux still there
    template_flux = 1.0 / (1.0 - left)  # so science - template = -1
    _add_signal(scene, -flux, [_point(left * template_flux, x, y)],
                [_point(template_flux, x, y)])


def _moving(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    x, y = _near_centre(rng, scene)
    length = _uniform(rng, 1.5, MAX_TRAIL_PIXELS) if rng.random() < 0.4 else 0.0
    length *= REFERENCE_PIXEL_SCALE / scene.pixel_scale
    angle = _uniform(rng, 0.0, math.pi)
    # A trail is a row of point sources at most a pixel apart, which smooths into a line.
    count = math.ceil(length) + 1
    steps = [k / (count - 1) - 0.5 for k in range(count)] if count > 1 else [0.0]
    trail = [
        _point(1.0 / count, x + t * length * math.cos(angle), y + t * length * math.sin(angle))
        for t in steps
    ]
    _add_signal(scene, flux, trail, [])


def _dipole(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    shift = _uniform(rng, 0.2, 1.0)
    angle = _uniform(rng, 0.0, 2 * math.pi)
    dx, dy = shift * math.cos(angle), shift * math.sin(angle)
    # Misregistration moves the whole science image, field stars and galaxies included.
    scene.science = [(f, x + dx, y + dy, vx, vy) for f, x, y, vx, vy in scene.template]
    # The positive lobe peaks about shift / 2 + sigma from the source along the shift.
    lobe = shift / 2 + scene.sigma_sci
    x = scene.centre - lobe * math.cos(angle)
    y = scene.centre - lobe * math.sin(angle)
    # Keep the source below saturation in the sharper template: saturated sources leave
    # rings more than dipoles, and those are `bright_star`'s. Bright targets then measure
    # fainter than asked; the reported SNR is what is measured either way.
    brightest = 0.8 * scene.saturation * 2 * math.pi * scene.sigma_tmp**2
    _add_signal(scene, flux, [_point(1.0, x + dx, y + dy)], [_point(1.0, x, y)],
                max_factor=brightest)


def _bright_star(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    """A saturated star; `flux` is unused: how far past saturation it goes sets its brightness."""
    x, y = _near_centre(rng, scene)
    overflow = _log_uniform(rng, 1.5, 30.0)  # unsaturated peak / saturation
    star_flux = overflow * scene.saturation * 2 * math.pi * scene.sigma_sci**2
    scene.template.append(_point(star_flux, x, y))
    # A percent-level calibration error and a clearly wrong PSF model leave the rings.
    scene.science.append(_point(star_flux * (1 + _uniform(rng, -0.03, 0.03)), x, y))
    mismatch = _uniform(rng, 0.03, 0.1) * (1 if rng.random() < 0.5 else -1)
    scene.sigma_render = scene.sigma_sci * (1 + mismatch)
    # Charge bleeds along the column, further the more the core overflows; coadded
    # templates mask and fill their bleed trails, so only the science shows one.
    _add_bleed(scene, x, y, overflow)


def _add_bleed(scene: _Scene, x: float, y: float, overflow: float) -> None:
    half = round(overflow)
    row, column = round(y), round(x)
    scene.bleeds.append((column, max(0, row - half), min(scene.size - 1, row + half)))


def _streak(rng: np.random.Generator, row: int, column: int) -> list[tuple[int, int, float]]:
    """A cosmic-ray track from (row, column): one to three pixels in a line, relative values."""
    angle = _uniform(rng, 0.0, 2 * math.pi)
    pixels = []
    for step in range(int(rng.integers(1, 4))):
        weight = 1.0 if step == 0 else _uniform(rng, 0.3, 1.0)
        pixels.append((row + round(step * math.sin(angle)),
                       column + round(step * math.cos(angle)), weight))
    return pixels


def _cosmic_ray(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    track = _streak(rng, scene.centre, scene.centre)
    amplitude = flux / sum(w * _pixel_response(scene, r, c) for r, c, w in track)
    scene.hits += [(r, c, amplitude * w) for r, c, w in track]


def _hot_pixel(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    c = scene.centre
    scene.hits.append((c, c, flux / _pixel_response(scene, c, c)))


def _satellite(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    angle = _uniform(rng, 0.0, math.pi)
    offset = _uniform(rng, -1.5, 1.5)
    # Satellites are out of focus, so their trails are often wider than the PSF.
    var = _uniform(rng, 0.0, 2.5) ** 2 + scene.sigma_render**2
    filter_var = scene.sigma_sci**2
    density = flux / (4 * math.pi * filter_var * _gauss(offset, var + filter_var))
    scene.satellite = (angle, offset, var, density)


def _bad_column(rng: np.random.Generator, scene: _Scene, flux: float) -> None:
    axis = int(rng.integers(2))
    c = scene.centre
    index = c + int(rng.integers(-2, 3))
    filter_var = scene.sigma_sci**2
    value = flux / (4 * math.pi * filter_var * _gauss(index - c, filter_var))
    scene.science_lines.append((axis, index, value))
    if rng.random() < 0.5:  # a masked neighbour, on the side away from the centre
        scene.science_lines.append((axis, index + (1 if index >= c else -1), math.nan))


_KIND_BUILDERS = {
    "transient": _transient,
    "variable": _variable,
    "variable_residual": _variable_residual,
    "fading": _fading,
    "moving": _moving,
    "dipole": _dipole,
    "bright_star": _bright_star,
    "cosmic_ray": _cosmic_ray,
    "hot_pixel": _hot_pixel,
    "satellite": _satellite,
    "bad_column": _bad_column,
}


def _add_incidental_defects(rng: np.random.Generator, scene: _Scene) -> None:
    """Defects any stamp may have, kept off the centre so the detection stays the kind's."""
    size, c = scene.size, scene.centre
    for _ in range(int(rng.poisson(0.3))):
        row, column = (int(i) for i in rng.integers(0, size, 2))
        amplitude = math.sqrt(scene.sky) * _log_uniform(rng, 5.0, 100.0)
        scene.hits += [
            (r, col, amplitude * w) for r, col, w in _streak(rng, row, column)
            if 0 <= r < size and 0 <= col < size and max(abs(r - c), abs(col - c)) > 3
        ]
    if rng.random() < 0.04:  # a masked row or column in one image
        axis = int(rng.integers(2))
        index = int(rng.integers(0, size - 7))
        index += 7 if index > c - 4 else 0  # skip the seven lines through the centre
        if rng.random() < 0.5:
            scene.template_lines.append((axis, index))
        else:
            scene.science_lines.append((axis, index, math.nan))
    if size >= 25 and rng.random() < INCIDENTAL_SATURATED_STAR:
        # A saturated neighbour: its core, rings and bleed trail stay 8 columns or more from
        # the centre, so the detection is still the kind's.
        column = float(rng.integers(2, c - 8)) if rng.random() < 0.5 else float(
            rng.integers(c + 9, size - 2))
        row = _uniform(rng, 2.0, size - 3.0)
        overflow = _log_uniform(rng, 1.5, 20.0)
        star_flux = overflow * scene.saturation * 2 * math.pi * scene.sigma_sci**2
        scene.template.append(_point(star_flux, column, row))
        scene.science.append(_point(star_flux * (1 + _uniform(rng, -0.02, 0.02)), column, row))
        _add_bleed(scene, column, row, overflow)
    if rng.random() < 0.02:  # the stamp runs off a detector edge
        axis = int(rng.integers(2))
        width = int(rng.integers(1, size // 3 + 1))
        indices = range(width) if rng.random() < 0.5 else range(size - width, size)
        scene.template_lines += [(axis, i) for i in indices]
        scene.science_lines += [(axis, i, math.nan) for i in indices]


# --- rendering a batch -------------------------------------------------------------------


def _components(per_subject: list[list[_Component]]) -> np.ndarray:
    array = np.zeros((len(per_subject), _MAX_COMPONENTS, 5), dtype=np.float32)
    for i, components in enumerate(per_subject):
        if components:
            array[i, : len(components)] = components
    return array


def _render_psf(components: np.ndarray, scenes: list[_Scene], core_var: np.ndarray,
                coords: np.ndarray) -> np.ndarray:
    """_render with each scene's two-Gaussian PSF of core variance `core_var` (n,)."""
    wing = np.array([s.wing_weight for s in scenes], dtype=np.float32)[:, None, None]
    extra = np.array([s.wing_extra for s in scenes], dtype=np.float32)
    image = _render(components, core_var, coords)
    image *= 1 - wing
    image += wing * _render(components, core_var + extra, coords)
    return image


def _noise_correlation(correlation: np.ndarray, m: int) -> np.ndarray:
    """(n, m, m) matrices C with C @ noise @ C.T the noise smoothed by [c, 1, c] along both
    axes, each row scaled to keep the variance of white noise."""
    c = correlation.astype(np.float32)[:, None, None]
    matrix = np.broadcast_to(np.eye(m, dtype=np.float32), (len(correlation), m, m)).copy()
    matrix += c * np.eye(m, k=1, dtype=np.float32)
    matrix += c * np.eye(m, k=-1, dtype=np.float32)
    matrix /= np.sqrt((matrix**2).sum(axis=2, keepdims=True))
    return matrix


def _background(scenes: list[_Scene], which: str, coords: np.ndarray) -> np.ndarray:
    """(n, m, m) background planes on pixel coordinates `coords`, from each scene's
    (value at the centre, slope x, slope y)."""
    planes = np.array([getattr(s, which) for s in scenes], dtype=np.float32)
    offsets = coords - scenes[0].centre
    level, slope_x, slope_y = (planes[:, k, None, None] for k in range(3))
    return level + slope_x * offsets[None, None, :] + slope_y * offsets[None, :, None]


def _render(components: np.ndarray, psf_var: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Images (n, m, m) on pixel coordinates `coords` (m,) of Gaussian components (n, K, 5).

    Each component is separable, so an image is a rank-K product of (K, m) profiles.
    """
    flux, x, y, var_x, var_y = np.moveaxis(components, -1, 0)
    var_x = (var_x + psf_var[:, None])[..., None]
    var_y = (var_y + psf_var[:, None])[..., None]
    profile_x = np.exp(-0.5 * (coords - x[..., None]) ** 2 / var_x) / np.sqrt(2 * np.pi * var_x)
    profile_y = np.exp(-0.5 * (coords - y[..., None]) ** 2 / var_y) / np.sqrt(2 * np.pi * var_y)
    return np.matmul((profile_y * flux[..., None]).transpose(0, 2, 1), profile_x)


def _satellite_image(scene: _Scene) -> np.ndarray:
    angle, offset, var, density = scene.satellite
    coords = np.arange(scene.size, dtype=np.float32) - scene.centre
    distance = coords[None, :] * math.sin(angle) - coords[:, None] * math.cos(angle) - offset
    return density * np.exp(-0.5 * distance**2 / var) / math.sqrt(2 * math.pi * var)


def _matching_kernels(scenes: list[_Scene], size: int) -> np.ndarray:
    """(n, size, size + 2 * pad) rows of the Gaussians that blur each template to its science.

    A template T (padded) matched to the science is K @ T @ K.T, already cropped to size.
    """
    var = np.array([s.sigma_sci**2 - s.sigma_tmp**2 for s in scenes], dtype=np.float32)
    offsets = (np.arange(size)[:, None] + _PAD - np.arange(size + 2 * _PAD)[None, :])
    kernel = np.exp(-0.5 * offsets.astype(np.float32) ** 2 / var[:, None, None])
    return kernel / kernel.sum(axis=2, keepdims=True)


def _apply_line(image: np.ndarray, axis: int, index: int, value: float) -> None:
    if axis == 0:
        image[index, :] += value
    else:
        image[:, index] += value


def _standard_normal(uniform: np.ndarray) -> np.ndarray:
    """Box-Muller: (n, 2, m) uniforms in [0, 1) -> (n, 2 m) standard normals.

    numpy's own normal sampler took ~8 ns a value when this was written, half the cost of
    a subject; this exact transform of vectorised uniforms costs a third of that. float32
    uniforms cut the tails at 5.8 sigma, which a stamp's few thousand pixels never reach
    in practice.
    """
    normal = np.empty_like(uniform)
    radius = np.sqrt(-2.0 * np.log1p(-uniform[:, 0]))
    angle = (2 * np.pi) * uniform[:, 1]
    np.multiply(radius, np.cos(angle), out=normal[:, 0])
    np.multiply(radius, np.sin(angle), out=normal[:, 1])
    return normal.reshape(len(uniform), -1)


def _observe(model: np.ndarray, variance: np.ndarray, noise: np.ndarray,
             out: np.ndarray) -> np.ndarray:
    """out = model + sqrt(variance) * noise, in place: these are the batch's largest arrays."""
    np.multiply(np.sqrt(variance), noise, out=out)
    out += model
    return out


def _render_batch(scenes: list[_Scene], noise_tmp: np.ndarray, noise_sci: np.ndarray,
                  size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (n, 3, size, size) cubes and the PSF flux and error measured on each difference."""
    cubes = np.empty((len(scenes), 3, size, size), dtype=np.float32)
    template, science, difference = cubes[:, 0], cubes[:, 1], cubes[:, 2]
    sky = np.array([s.sky for s in scenes], dtype=np.float32)[:, None, None]
    depth = np.array([s.depth for s in scenes], dtype=np.float32)[:, None, None]
    sigma_tmp = np.array([s.sigma_tmp for s in scenes], dtype=np.float32)
    sigma_render = np.array([s.sigma_render for s in scenes], dtype=np.float32)
    saturation = np.array([s.saturation for s in scenes], dtype=np.float32)[:, None, None]
    crop = slice(_PAD, _PAD + size)
    padded = size + 2 * _PAD
    correlate_tmp = _noise_correlation(np.array([s.correlation_tmp for s in scenes]), padded)
    correlate_sci = _noise_correlation(np.array([s.correlation_sci for s in scenes]), size)
    noise_tmp[...] = correlate_tmp @ noise_tmp @ correlate_tmp.transpose(0, 2, 1)
    noise_sci[...] = correlate_sci @ noise_sci @ correlate_sci.transpose(0, 2, 1)

    padded_coords = np.arange(-_PAD, size + _PAD, dtype=np.float32)
    model_tmp = _render_psf(_components([s.template for s in scenes]), scenes, sigma_tmp**2,
                            padded_coords)
    var_tmp = np.maximum(model_tmp, 0)
    var_tmp += sky
    var_tmp /= depth
    model_tmp += _background(scenes, "background_tmp", padded_coords)
    padded_template = _observe(model_tmp, var_tmp, noise_tmp, out=noise_tmp)
    np.minimum(padded_template, saturation, out=padded_template)

    coords = np.arange(size, dtype=np.float32)
    model_sci = _render_psf(_components([s.science for s in scenes]), scenes, sigma_render**2,
                            coords)
    for i, scene in enumerate(scenes):
        if scene.satellite is not None:
            model_sci[i] += _satellite_image(scene)
    var_sci = np.maximum(model_sci, 0)
    var_sci += sky
    model_sci += _background(scenes, "background_sci", coords)
    _observe(model_sci, var_sci, noise_sci, out=science)
    for i, scene in enumerate(scenes):
        for row, column, value in scene.hits:
            science[i, row, column] += value
        for axis, index, value in scene.science_lines:
            _apply_line(science[i], axis, index, value)
    np.minimum(science, saturation, out=science)  # NaN stays NaN
    for i, scene in enumerate(scenes):
        for column, first, last in scene.bleeds:
            science[i, first : last + 1, column] = scene.saturation

    kernels = _matching_kernels(scenes, size)
    np.subtract(science, kernels @ padded_template @ kernels.transpose(0, 2, 1), out=difference)
    template[...] = padded_template[:, crop, crop]
    # Masked template pixels are applied after matching (a NaN would smear over the whole
    # convolution) and masked in the difference too, as a pipeline's mask plane would be.
    for i, scene in enumerate(scenes):
        for axis, index in scene.template_lines:
            _apply_line(template[i], axis, index, np.nan)
            _apply_line(difference[i], axis, index, np.nan)

    psf_flux, psf_flux_err = _measure(difference, var_sci, var_tmp, kernels, correlate_sci,
                                      correlate_tmp, scenes)
    return cubes, psf_flux, psf_flux_err


def _weighted_sum(rows: np.ndarray, image: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """sum over (i, j) of rows[n, i] * image[n, i, j] * columns[n, j], per subject n."""
    return (rows[:, None, :] @ image @ columns[:, :, None])[:, 0, 0]


def _measure(difference: np.ndarray, var_sci: np.ndarray, var_tmp: np.ndarray,
             kernels: np.ndarray, correlate_sci: np.ndarray, correlate_tmp: np.ndarray,
             scenes: list[_Scene]) -> tuple[np.ndarray, np.ndarray]:
    """PSF flux at the centre, sum(P D) / sum(P^2) over the non-NaN pixels, and its error.

    Each image's noise is white noise smoothed by its correlation matrix C, and the matched
    template's is smoothed by the kernel K as well: each share of the variance is that
    image's variance weighted by the PSF pulled back through what smoothed it, C.T P C for
    the science and C.T K.T P K C for the template (separable, like P). Masked pixels are
    left out of the science share only; masks stay clear of the centre, where the weights
    are.
    """
    size = difference.shape[-1]
    sigma = np.array([s.sigma_sci for s in scenes], dtype=np.float32)
    offsets = np.arange(size, dtype=np.float32) - size // 2
    profile = np.exp(-0.5 * offsets**2 / sigma[:, None] ** 2)
    profile /= profile.sum(axis=1, keepdims=True)  # the PSF P is the outer product
    valid = ~np.isnan(difference)
    squared = profile**2
    norm = _weighted_sum(squared, valid.astype(np.float32), squared)
    flux = _weighted_sum(profile, np.where(valid, difference, 0.0), profile)
    pulled_sci = (profile[:, None, :] @ correlate_sci)[:, 0] ** 2
    pulled_tmp = (profile[:, None, :] @ kernels @ correlate_tmp)[:, 0] ** 2
    var = (_weighted_sum(pulled_sci, np.where(valid, var_sci, 0.0), pulled_sci)
           + _weighted_sum(pulled_tmp, var_tmp, pulled_tmp))
    # float32 sums of a few thousand terms are good to ~1e-6; report float64 all the same.
    return (flux / norm).astype(np.float64), (np.sqrt(var) / norm).astype(np.float64)
