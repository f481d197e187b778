"""The reference-set pages, for staff and experts: the sets, their class balance, agreement."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from labeling import roles
from labeling.access import readers_only
from labeling.agreement import core, plots, selectors
from labeling.models import ReferenceSet

# Volunteers and the ML team get 403 (the ML team sees reference labels only in label sets).
reference_readers_only = readers_only(roles.can_read_reference_labels,
                                      "reference labels are for staff and experts")


@require_GET
@reference_readers_only
def reference_set_list(request):
    summaries = selectors.set_summaries(selectors.reference_sets_named(None))
    return render(request, "labeling/reference_set_list.html", {
        "summaries": summaries, "categories": core.CATEGORIES,
    })


@require_GET
@reference_readers_only
def reference_set_detail(request, set_id: int):
    reference_set = get_object_or_404(ReferenceSet.objects.select_related("team"), pk=set_id)
    [summary] = selectors.set_summaries([reference_set])
    return render(request, "labeling/reference_set_detail.html", {
        "summary": summary, "categories": core.CATEGORIES,
    })


@require_GET
@reference_readers_only
def agreement(request):
    return render(request, "labeling/agreement.html", {
        "report": selectors.reference_agreement(),
        "categories": core.CATEGORIES,
        "kappa_bands": core.KAPPA_BANDS,
    })


@require_GET
@reference_readers_only
def class_balance_plot(request, set_id: int | None = None):
    if set_id is None:
        reference_sets = selectors.reference_sets_named(None)
    else:
        reference_sets = [get_object_or_404(ReferenceSet, pk=set_id)]
    balance = {
        summary.reference_set.name: {row.origin: row.counts for row in summary.by_origin}
        for summary in selectors.set_summaries(reference_sets)
    }
    response = HttpResponse(plots.plot_class_balance(balance), content_type="image/png")
    # Labels change while experts work: never serve a stale balance.
    response["Cache-Control"] = "private, no-cache"
    return response
