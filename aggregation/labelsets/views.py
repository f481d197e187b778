"""The label-set pages, for the ML team and staff: the list, one set's manifest, breakdown plot
and lineage, and the export jobs (with their failures)."""

from __future__ import annotations

import json

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from aggregation import plots
from aggregation.forms import ExportForm
from aggregation.labelsets import selectors
from aggregation.labelsets.services import ExportOptions, label_set_export_queue
from aggregation.models import LabelSetExport
from labeling import roles
from labeling.access import readers_only
from labeling.errors import LabelingError, NotFound

# Rows on the list page; the API pages through all of them.
LIST_LIMIT = 200

label_set_access = readers_only(
    roles.can_use_label_sets,
    "Label sets carry reference labels and origins, so they are for the ML team and staff.",
)


@require_GET
@label_set_access
def label_set_list(request):
    open_jobs = list(selectors.export_jobs_not_done()[:LIST_LIMIT])
    return render(request, "aggregation/label_set_list.html", {
        "label_sets": [(label_set, selectors.manifest_counts(label_set.manifest))
                       for label_set in selectors.label_sets_list()[:LIST_LIMIT]],
        "open_jobs": open_jobs,
        "exporting": any(job.status in (LabelSetExport.Status.PENDING,
                                        LabelSetExport.Status.RUNNING) for job in open_jobs),
        "can_read_runs": roles.can_read_aggregation_runs(request.user),
    })


@require_GET
@label_set_access
def label_set_detail(request, number: int):
    label_set = _label_set(number)
    return render(request, "aggregation/label_set_detail.html", {
        "label_set": label_set,
        "counts": selectors.manifest_counts(label_set.manifest),
        "files": selectors.manifest_files(label_set.manifest),
        "jobs": list(selectors.export_jobs_of_run(label_set.run_id)[:LIST_LIMIT]),
        "manifest_json": json.dumps(label_set.manifest, indent=2, sort_keys=True),
        "can_read_runs": roles.can_read_aggregation_runs(request.user),
    })


@require_GET
@label_set_access
def label_set_plot(request, number: int):
    label_set = _label_set(number)
    png = plots.plot_label_set_breakdown(
        {row.split: row.by_class for row in selectors.manifest_counts(label_set.manifest)}
    )
    response = HttpResponse(png, content_type="image/png")
    # A label set never changes, so neither does its plot.
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_http_methods(["GET", "POST"])
@label_set_access
def label_set_export(request):
    """The export form; a valid request is queued on the `aggregation` queue and followed on
    the list page (exports not done, then the new set)."""
    form = ExportForm(request.POST or None, initial={"run": request.GET.get("run")})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                label_set_export_queue(
                    form.cleaned_data["run"].pk, ExportOptions.from_dict(form.options()),
                    created_by=request.user,
                    fine_tune_from=form.cleaned_data["fine_tune_from"].strip(),
                )
            except LabelingError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                return redirect("label-sets")
    return render(request, "labeling/form_page.html", {
        "form": form, "heading": "Export a label set",
        "explanation": "A balanced, split label set from a finished aggregation run. The "
                       "export runs on the aggregation worker; the label-set list follows it.",
        "submit": "Export", "back_url": reverse("label-sets"), "back_text": "All label sets",
    }, status=status)


def _label_set(number: int):
    try:
        return selectors.label_set_get(number)
    except NotFound as exc:
        raise Http404(exc.message) from None
