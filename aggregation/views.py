"""The results pages, for staff and experts: runs, the breakdown table, and the plots."""

from __future__ import annotations

import numpy as np
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from aggregation import plots, selectors, services
from aggregation.forms import RunForm
from aggregation.swap import SwapParams, VolunteerReferenceFractions
from labeling import roles
from labeling.access import readers_only
from labeling.errors import LabelingError, NotFound

# Trajectories drawn on a run's page: enough to see the shapes, few enough to read them.
TRAJECTORY_SAMPLE = 60


results_access = readers_only(
    roles.can_read_aggregation_runs,
    "Aggregation runs show reference labels next to the crowd's answers, so they are for "
    "staff and experts. The ML team reaches a run's results through its label sets.",
)


@require_GET
@results_access
def run_list(request):
    return _run_list(request, RunForm())


def _run_list(request, form: RunForm, status: int = 200):
    runs = list(selectors.runs_list()[:200])
    return render(request, "aggregation/run_list.html", {
        "runs": runs, "breakdown": selectors.breakdown_table(runs), "form": form,
    }, status=status)


@require_POST
@results_access
def run_start(request):
    """Start a run from the browser: registered now, computed by the `aggregation` queue."""
    form = RunForm(request.POST)
    if not form.is_valid():
        return _run_list(request, form, status=400)
    data = form.cleaned_data
    try:
        run = services.run_create(
            workflow=data["workflow"],
            reference_sets=selectors.reference_sets_parse(data["reference_sets"]),
            mode=data["mode"], params=services.swap_params(prior=data["prior"]),
            union_policy=data["union_policy"], triggered_by="web", created_by=request.user,
        )
    except LabelingError as exc:
        form.add_error(None, exc.message)
        return _run_list(request, form, status=exc.status_code)
    services.run_queue(run)
    return redirect("aggregation-run", run_id=run.pk)


@require_GET
@results_access
def run_detail(request, run_id: int):
    run = _run(run_id)
    return render(request, "aggregation/run_detail.html", {
        "run": run,
        "plots": PLOTS if run.status == run.Status.DONE else {},
        "truth": run.summary.get("truth"),
    })


@require_GET
@results_access
def run_plot(request, run_id: int, name: str):
    run = _run(run_id)
    if name not in PLOTS or run.status != run.Status.DONE:
        raise Http404(f"no plot {name!r} for run {run_id}")
    png = PLOTS[name][1](run)
    response = HttpResponse(png, content_type="image/png")
    # A finished run never changes, so neither do its plots.
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _run(run_id: int):
    try:
        return selectors.run_get(run_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _volunteer_fractions(run) -> bytes:
    skills = selectors.skill_arrays(run)
    return plots.plot_volunteer_fractions(_fractions(skills))


def _fractions(skills: dict[str, np.ndarray]) -> VolunteerReferenceFractions:
    with np.errstate(invalid="ignore", divide="ignore"):
        return VolunteerReferenceFractions(
            n_classifications=skills["n_classifications"],
            n_ref_real=skills["n_real_seen"],
            frac_real_correct=skills["n_real_correct"] / skills["n_real_seen"],
            n_ref_bogus=skills["n_bogus_seen"],
            frac_bogus_correct=skills["n_bogus_correct"] / skills["n_bogus_seen"],
        )


def _posteriors(run) -> bytes:
    p_real, _, _ = selectors.posterior_arrays(run)
    return plots.plot_posterior_histogram(p_real, SwapParams(**run.parameters))


def _trajectories(run) -> bytes:
    _p_real, offsets, values = selectors.posterior_arrays(run)
    longest = np.argsort(-np.diff(offsets), kind="stable")[:TRAJECTORY_SAMPLE]
    return plots.plot_trajectory_arrays(offsets, values, longest, SwapParams(**run.parameters))


def _skills(run) -> bytes:
    skills = selectors.skill_arrays(run)
    return plots.plot_skill_arrays(skills["p_real"], skills["p_bogus"], skills["contributes"],
                                   skills["n_real_seen"] + skills["n_bogus_seen"])


PLOTS = {
    "volunteers": ("Reference subjects labelled correctly, per volunteer", _volunteer_fractions),
    "skills": ("Volunteer skills", _skills),
    "posteriors": ("Final Pr(Real)", _posteriors),
    "trajectories": ("Pr(Real) trajectories of the most-classified subjects", _trajectories),
}
