"""The realism report: its per-stamp statistics measure what they name, it reads both real
sets, and the command writes its table, plots and JSON or refuses clearly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulation import realism

SIZE = 51
CENTRE = SIZE // 2
REAL_SETS = [realism.DEFAULT_REALDATA / realism.ZTF_FILE,
             realism.DEFAULT_REALDATA / realism.RUBIN_FILE]
needs_real_data = pytest.mark.skipif(
    not all(path.is_file() for path in REAL_SETS),
    reason=f"the real sets are not in {realism.DEFAULT_REALDATA}",
)


def gaussian_cube(sigma=1.5, flux=5e4, dx=0.0, dy=0.0, noise=10.0, seed=0, sign=1.0):
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:SIZE, :SIZE]
    source = flux * np.exp(-0.5 * ((columns - CENTRE - dx) ** 2 + (rows - CENTRE - dy) ** 2)
                           / sigma**2) / (2 * math.pi * sigma**2)
    science = source + rng.normal(0, noise, (SIZE, SIZE))
    template = rng.normal(0, noise / 3, (SIZE, SIZE))
    difference = sign * source + rng.normal(0, noise, (SIZE, SIZE))
    return np.stack([template, science, difference]).astype(np.float32)


@pytest.mark.parametrize("sigma", [0.9, 1.5, 2.5])
def test_psf_width_is_the_sources_sigma(sigma):
    stats = realism.stamp_statistics(gaussian_cube(sigma=sigma))
    # The window (radius 4 px) truncates wide sources a little.
    assert stats["psf_sigma"] == pytest.approx(sigma, rel=0.2)


def test_centroid_offset_and_the_sign_of_the_central_flux():
    stats = realism.stamp_statistics(gaussian_cube(dx=0.6, dy=-0.8, sign=-1.0))
    assert stats["centroid_offset"] == pytest.approx(1.0, abs=0.2)
    assert stats["central_snr"] < -50
    assert realism.stamp_statistics(gaussian_cube())["central_snr"] > 50


def test_noise_ratios_nan_fraction_and_correlation():
    cube = gaussian_cube()
    cube[0, 30, :] = np.nan  # one template row with no data
    stats = realism.stamp_statistics(cube)
    assert stats["template_depth"] == pytest.approx(1 / 3, rel=0.15)
    assert stats["difference_noise"] == pytest.approx(1.0, rel=0.15)
    assert stats["nan_fraction"] == pytest.approx(SIZE / cube.size)
    assert abs(stats["template_correlation"]) < 0.1  # white noise
    smoothed = cube.copy()
    smoothed[0] = smoothed[0] + np.roll(smoothed[0], 1, axis=1)
    assert realism.stamp_statistics(smoothed)["template_correlation"] > 0.3


def test_a_faint_science_source_has_no_width():
    assert math.isnan(realism.stamp_statistics(gaussian_cube(flux=10.0))["psf_sigma"])


@needs_real_data
def test_both_real_sets_are_read():
    ztf = realism.load_ztf(realism.DEFAULT_REALDATA)
    rubin = realism.load_rubin(realism.DEFAULT_REALDATA)
    assert len(ztf) == 300
    assert ztf[0].shape == (3, 51, 51)
    assert len(rubin) == 50
    assert all(cube.shape[0] == 3 and 30 <= cube.shape[1] <= 46 for cube in rubin)


@needs_real_data
def test_the_command_writes_its_table_plots_and_json(tmp_path, capsys):
    assert realism.main(["--n", "40", "--seed", "3", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for statistic in realism.STATISTICS:
        assert statistic.label in printed
        png = (tmp_path / f"{statistic.name}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
    report = json.loads((tmp_path / "realism.json").read_text())
    sets = report["statistics"]["psf_sigma"]["sets"]
    assert set(sets) == {"simulated rubin", "simulated ztf", "real ztf", "real rubin"}
    assert sets["real ztf"]["n"] > 200


def test_the_command_refuses_a_missing_real_set(tmp_path, capsys):
    assert realism.main(["--n", "5", "--realdata", str(tmp_path), "--out",
                         str(tmp_path / "out")]) == realism.EXIT_BAD_INPUT
    assert "cannot read the real ZTF triplets" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@needs_real_data
def test_an_unreadable_rubin_alert_is_left_out_not_fatal(tmp_path, capsys):
    import fastavro

    with (realism.DEFAULT_REALDATA / realism.RUBIN_FILE).open("rb") as stream:
        reader = fastavro.reader(stream)
        schema, alerts = reader.writer_schema, list(reader)
    alerts[1]["cutoutScience"] = None
    with (tmp_path / realism.RUBIN_FILE).open("wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(schema), alerts)
    assert len(realism.load_rubin(tmp_path)) == len(alerts) - 1
    assert "1 Rubin alerts left out (alert 2: cutout missing" in capsys.readouterr().err
