"""EM runs: the options they take (prior mode, prior strength, cap, tolerance), kept on the run
record with the iterations and convergence, through the service and the `aggregate` command."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from aggregation import services
from aggregation.models import AggregationRun
from aggregation.swap import EmOptions
from labeling.errors import InvalidInput

pytestmark = pytest.mark.django_db


def _em_run(crowd, **options):
    run = services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference],
                              mode="em", params=services.swap_params(prior=0.3),
                              em=services.em_options(**options))
    return services.run_execute(run.pk)


def test_an_em_run_records_its_options_and_whether_it_converged(crowd):
    run = _em_run(crowd, prior_mode="fixed", max_iter=50, tol=1e-8)
    assert run.em_options["prior_mode"] == "fixed"
    assert run.em_options["max_iter"] == 50
    assert run.em_options["tol"] == 1e-8
    assert run.em_converged is True
    assert 1 <= run.em_iterations < 50
    assert run.summary["em"] == {"iterations": run.em_iterations, "converged": True,
                                 "prior_mode": "fixed", "prior": 0.3}


def test_an_em_run_that_hits_the_cap_says_so(crowd):
    run = _em_run(crowd, max_iter=1, tol=0.0)
    assert run.em_iterations == 1
    assert run.em_converged is False
    assert run.summary["em"]["prior_mode"] == "learned"
    assert run.summary["em"]["prior"] != 0.3  # learned from the answers


def test_em_runs_default_their_options_and_other_runs_have_none(crowd):
    em = services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference],
                             mode="em")
    assert EmOptions(**em.em_options) == EmOptions()
    batch = services.run_execute(services.run_create(
        workflow=crowd.workflow, reference_sets=[crowd.reference]).pk)
    assert batch.em_options == {}
    assert batch.em_iterations is None
    assert batch.em_converged is None
    with pytest.raises(InvalidInput, match="EM options"):
        services.run_create(workflow=crowd.workflow, reference_sets=[crowd.reference],
                            em=EmOptions())


def test_aggregate_command_takes_the_em_options_and_reports_convergence(crowd):
    out = io.StringIO()
    call_command("aggregate", "--workflow", crowd.workflow.slug, "--reference-sets", "rubin",
                 "--mode", "em", "--em-prior", "fixed", "--em-max-iter", "1", "--em-tol", "0",
                 "--em-prior-strength", "5", stdout=out)
    run = AggregationRun.objects.get()
    assert run.em_options == {**run.em_options, "prior_mode": "fixed", "max_iter": 1,
                              "tol": 0.0, "prior_strength": 5.0}
    assert "EM: 1 iterations, NOT converged (cap 1 reached)" in out.getvalue()
    assert "prior Pr(Real) fixed: 0.500" in out.getvalue()


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "batch", "--em-prior", "fixed"], "--em-prior only apply to --mode em"),
    (["--mode", "em", "--em-max-iter", "-1"], "max_iter must be an integer >= 0"),
    (["--mode", "em", "--em-tol", "nan"], "tol must be a finite number"),
])
def test_aggregate_command_refuses_bad_em_options(crowd, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("aggregate", "--workflow", crowd.workflow.slug, "--reference-sets",
                     "rubin", *args, stdout=io.StringIO())
    assert not AggregationRun.objects.exists()
