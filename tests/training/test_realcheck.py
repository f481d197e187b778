"""Sim to real (training.ml.realcheck and `manage.py realcheck`): the figures against ZTF's
scores, a CNN trained on simulated triplets only, and clear refusals."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from training.ml import realcheck
from training.ml.model import RealBogusCNN
from training.ml.weights import save_weights

needs_real_data = pytest.mark.skipif(
    not (realcheck.DEFAULT_REALDATA / realcheck.ZTF_FILE).is_file(),
    reason=f"the real ZTF triplets are not in {realcheck.DEFAULT_REALDATA}",
)


def fake_real(n=40, seed=0) -> realcheck.RealZtf:
    rng = np.random.default_rng(seed)
    drb = rng.random(n)
    return realcheck.RealZtf(rng.normal(size=(n, 3, 51, 51)).astype(np.float32), drb,
                             rng.random(n))


def test_a_score_that_follows_drb_ranks_perfectly():
    real = fake_real()
    figures = realcheck.check(real.drb * 0.5 + 0.2, real)
    assert figures.auc == pytest.approx(1.0)
    assert figures.spearman_drb == pytest.approx(1.0)
    assert figures.n_real == int((real.drb >= 0.5).sum())
    reversed_figures = realcheck.check(1 - real.drb, real)
    assert reversed_figures.auc == pytest.approx(0.0)
    assert reversed_figures.spearman_drb == pytest.approx(-1.0)
    text = "\n".join(figures.lines("a model"))
    assert "ROC AUC against drb >= 0.5: 1.000 (target 0.85: met)" in text


def test_scores_must_be_one_per_triplet():
    with pytest.raises(realcheck.RealCheckError, match="scores for"):
        realcheck.check(np.zeros(3), fake_real())


def test_a_kind_balanced_set_has_as_many_of_each_kind():
    n_kinds = len(realcheck.KIND_TRUTH)
    _, labels, kinds = realcheck.simulated_set(2 * n_kinds, seed=5, balance_kinds=True)
    assert Counter(kinds) == dict.fromkeys(realcheck.KIND_TRUTH, 2)
    assert labels.tolist() == [float(realcheck.KIND_TRUTH[k] == "real") for k in kinds]
    _, _, plain = realcheck.simulated_set(2 * n_kinds, seed=5)
    assert len(set(plain)) < n_kinds  # the survey's mix: movers and dipoles first


def test_a_cnn_trains_on_simulated_triplets_with_their_truth():
    stamps, labels, _ = realcheck.simulated_set(30, seed=4)
    assert stamps.shape == (30, 3, 51, 51)
    assert set(np.unique(labels)) == {0.0, 1.0}
    model, result = realcheck.train_simulated(30, epochs=1, seed=4)
    assert isinstance(model, RealBogusCNN)
    assert len(result.history) == 1
    with pytest.raises(realcheck.RealCheckError, match="at least 20"):
        realcheck.train_simulated(5, epochs=1)


@needs_real_data
def test_the_module_checks_saved_weights_on_the_real_set(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_weights(RealBogusCNN(), weights)
    assert realcheck.main(["--weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "on 300 real ZTF triplets (269 with drb >= 0.5, 31 below)" in out
    assert "ZTF's random-forest rb: ROC AUC 0.9" in out


def test_the_module_refuses_missing_data_and_bad_weights(tmp_path, capsys):
    assert realcheck.main(["--weights", str(tmp_path / "none"), "--realdata",
                           str(tmp_path)]) == realcheck.EXIT_BAD_INPUT
    assert "cannot read the real ZTF triplets" in capsys.readouterr().err
    if (realcheck.DEFAULT_REALDATA / realcheck.ZTF_FILE).is_file():
        (tmp_path / "bad.safetensors").write_bytes(b"not weights")
        assert realcheck.main(["--weights", str(tmp_path / "bad.safetensors")]) == 2
        assert "error:" in capsys.readouterr().err


@needs_real_data
@pytest.mark.django_db
def test_the_command_checks_a_registered_version(base_version):
    out = io.StringIO()
    call_command("realcheck", "--model", base_version.name, stdout=out)
    assert f"model {base_version.name} on 300 real ZTF triplets" in out.getvalue()
    assert "Spearman with drb" in out.getvalue()


@pytest.mark.django_db
def test_the_command_refuses_an_unknown_version():
    with pytest.raises(CommandError, match="no model version"):
        call_command("realcheck", "--model", "nope", stdout=io.StringIO())
