"""The model-registry pages, for the ML team and staff: the versions as a lineage with the jobs
not done, one version with its evaluation, its figures, the comparison of two versions on the
same test split, and one training job's progress (which the page's script keeps current).

Views validate and call selectors and services; what the pages show is worked out in
`training.presenters`."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from labeling import roles
from labeling.access import readers_only
from labeling.errors import InvalidInput, LabelingError, NotFound
from training import presenters, selectors, services, storage
from training.forms import ScoreForm, TrainForm
from training.models import Evaluation, JobStatus, ModelVersion, TrainingJob

# Rows on the list page (the API pages through all of them) and recent scoring jobs shown.
LIST_LIMIT = 200
RECENT_SCORING_JOBS = 20
# How often the job page's script asks the API for news.
POLL_INTERVAL_S = 2
# A version's evaluation on a label set never changes, so neither do its figures.
FIGURE_CACHE_CONTROL = "private, max-age=86400"


# Models are trained on label sets (reference labels, origins), so they have the same readers.
model_readers_only = readers_only(roles.can_use_label_sets,
                                  "The model registry is for the ML team and staff.")


@require_GET
@model_readers_only
def model_list(request):
    versions = list(selectors.versions_with_own_evaluation()[:LIST_LIMIT])
    rows = [(row, _summary(row.version.own_evaluations))
            for row in presenters.lineage_rows(versions)]
    jobs = [(job, presenters.job_progress(epoch=job.epoch, options=job.options,
                                          batches_done=job.batches_done,
                                          batches_total=job.batches_total))
            for job in selectors.training_jobs_not_done()[:LIST_LIMIT]]
    return render(request, "training/model_list.html", {
        "rows": rows,
        "jobs": jobs,
        "scoring_jobs": list(selectors.scoring_jobs_list()[:RECENT_SCORING_JOBS]),
        "version_names": [version.name for version in versions],
    })


def _summary(own_evaluations: list[Evaluation]) -> presenters.EvaluationSummary | None:
    return presenters.summarise(own_evaluations[0].metrics) if own_evaluations else None


@require_GET
@model_readers_only
def model_detail(request, name: str):
    version = _version(name)
    evaluation = selectors.evaluation_find(version, version.label_set_id)
    metrics = evaluation.metrics if evaluation is not None else None
    return render(request, "training/model_detail.html", {
        "version": version,
        "ancestors": selectors.lineage(version)[1:],
        "children": list(version.children.order_by("pk")),
        "weights_size": _file_size(version.weights_path),
        "chart": presenters.loss_chart(version.history, best_epoch=version.best_epoch),
        "epochs": presenters.epoch_rows(version.history, version.best_epoch),
        "summary": presenters.summarise(metrics) if metrics else None,
        "origins": presenters.per_origin_rows(metrics) if metrics else [],
        "figures": presenters.FIGURES.values(),
        "scoring_jobs": list(selectors.scoring_jobs_of(version)[:LIST_LIMIT]),
    })


def _file_size(relative_path: str) -> int | None:
    """Bytes of a registered file; None when it is missing on this server."""
    try:
        return storage.path_of(relative_path).stat().st_size
    except FileNotFoundError:
        return None


@require_GET
@model_readers_only
def model_figure(request, name: str, figure: str):
    kind = _figure_kind(figure)
    version = _version(name)
    evaluation = selectors.evaluation_find(version, version.label_set_id)
    if evaluation is None:
        raise Http404(f"model version {name} has no evaluation on its label set")
    return _png(kind.draw({version.name: evaluation.metrics}))


@require_GET
@model_readers_only
def model_compare(request):
    try:
        comparison = _comparison(request.GET)
    except LabelingError as exc:
        return _problem(request, exc)
    a, b, label_set = comparison.a, comparison.b, comparison.label_set
    metrics_a, metrics_b = comparison.evaluation_a.metrics, comparison.evaluation_b.metrics
    query = {"a": a.name, "b": b.name, "label_set": label_set.number}
    return render(request, "training/model_compare.html", {
        "a": a, "b": b, "label_set": label_set,
        "summary_a": presenters.summarise(metrics_a),
        "summary_b": presenters.summarise(metrics_b),
        "numbers": presenters.compare(metrics_a, metrics_b),
        "figures": presenters.FIGURES.values(),
        "query": query,
        "query_string": urlencode(query),
        "version_names": selectors.version_names(LIST_LIMIT),
    })


@require_GET
@model_readers_only
def model_compare_figure(request, figure: str):
    kind = _figure_kind(figure)
    try:
        comparison = _comparison(request.GET)
    except LabelingError as exc:
        return _problem(request, exc)
    return _png(kind.draw({comparison.a.name: comparison.evaluation_a.metrics,
                           comparison.b.name: comparison.evaluation_b.metrics}))


def _comparison(query) -> services.Comparison:
    """Validate ?a=&b=[&label_set=] and call the comparison service."""
    names = (query.get("a", "").strip(), query.get("b", "").strip())
    if not all(names):
        raise InvalidInput("pick two versions to compare: a and b (e.g. ?a=v0.1&b=v0.2)")
    number = query.get("label_set", "").strip()
    if number and not number.isdigit():
        raise InvalidInput(f"label_set must be a label set number, not {number!r}")
    return services.versions_compare(*names, int(number) if number else None)


def _problem(request, error: LabelingError) -> HttpResponse:
    """A page that says what was wrong with the request, with the form to try again."""
    return render(request, "training/problem.html", {
        "message": error.message,
        "version_names": selectors.version_names(LIST_LIMIT),
        "query": {key: request.GET.get(key, "") for key in ("a", "b", "label_set")},
    }, status=error.status_code)


@require_GET
@model_readers_only
def training_job_detail(request, pk: int):
    try:
        job = selectors.training_job_get(pk)
    except NotFound as exc:
        raise Http404(exc.message) from None
    best_epoch = (job.model_version.best_epoch if job.model_version
                  else presenters.best_epoch_of(job.history))
    progress = presenters.job_progress(epoch=job.epoch, options=job.options,
                                       batches_done=job.batches_done,
                                       batches_total=job.batches_total)
    live = job.status in (JobStatus.PENDING, JobStatus.RUNNING)
    return render(request, "training/training_job.html", {
        "job": job,
        "progress": progress,
        "live": live,
        "poll_seconds": POLL_INTERVAL_S,
        "chart": presenters.loss_chart(job.history, best_epoch=best_epoch,
                                       planned_epochs=progress.epochs_planned),
        "epochs": presenters.epoch_rows(job.history, best_epoch),
        "config": {
            "api": reverse("api-training-job", kwargs={"pk": job.pk}),
            "models": reverse("models"),
            "status": job.status,
            "epoch": job.epoch,
            "batches_done": job.batches_done,
            "batches_total": job.batches_total,
            "interval_ms": POLL_INTERVAL_S * 1000,
        },
    })


@require_http_methods(["GET", "POST"])
@model_readers_only
def training_start(request):
    """Train or fine-tune on a label set (?label_set=N): the job is queued on the `training`
    queue and its page follows it, epoch by epoch."""
    form = TrainForm(request.POST or None,
                     initial={"label_set": request.GET.get("label_set"),
                              "parent": request.GET.get("parent")},
                     version_names=selectors.version_names(LIST_LIMIT))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                job = services.training_job_create(
                    data["label_set"], parent=data["parent"] or None,
                    name=data["name"].strip() or None, options=form.options(),
                    trigger=TrainingJob.Trigger.WEB, created_by=request.user,
                )
            except LabelingError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                return redirect("training-job", pk=job.pk)
    label_set = form["label_set"].value()
    return render(request, "labeling/form_page.html", {
        "form": form, "heading": f"Train a model on label set {label_set}",
        "explanation": "Train a new CNN, or fine-tune a version's weights, on this label set's "
                       "train split (validation for early stopping, test for the evaluation). "
                       "The training worker runs the job; its page follows it.",
        "submit": "Start training", "back_url": reverse("models"), "back_text": "All models",
    }, status=status)


@require_http_methods(["GET", "POST"])
@model_readers_only
def scoring_start(request, name: str):
    """Score a subject set with this version, on the `scoring` queue."""
    version = _version(name)
    form = ScoreForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            subject_set = form.cleaned_data["subject_set"]
            try:
                services.scoring_job_create(version.name, subject_set.name,
                                            project=subject_set.project.name,
                                            created_by=request.user)
            except LabelingError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                return redirect("model-version", name=version.name)
    return render(request, "labeling/form_page.html", {
        "form": form, "heading": f"Score a subject set with {version.name}",
        "explanation": "Every subject of the set with stamps gets this version's reliability "
                       "score; subjects it scored before are skipped. The scoring worker runs "
                       "the job; the version's page lists it.",
        "submit": "Score", "back_url": reverse("model-version", kwargs={"name": version.name}),
        "back_text": f"Model {version.name}",
    }, status=status)


def _version(name: str) -> ModelVersion:
    try:
        return selectors.version_get(name)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _figure_kind(slug: str) -> presenters.FigureKind:
    try:
        return presenters.FIGURES[slug]
    except KeyError:
        raise Http404(f"no figure {slug!r}: the figures are "
                      f"{', '.join(presenters.FIGURES)}") from None


def _png(png: bytes) -> HttpResponse:
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = FIGURE_CACHE_CONTROL
    return response
