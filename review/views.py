"""The expert review page. The page's script does the rest through the review API (queues,
dossiers) and the labeling API (reference labels and their history, stamps, pixel values)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from labeling import roles
from labeling.errors import NotFound
from review import queues, selectors


@require_GET
@login_required
@ensure_csrf_cookie
def review(request, slug: str):
    """Anonymous visitors are sent to sign in; signed-in volunteers and the ML team get 403."""
    if not roles.can_read_reference_labels(request.user):
        raise PermissionDenied("The review page is for staff and experts.")
    try:
        workflow = selectors.workflow_by_slug(slug)
    except NotFound as exc:
        raise Http404(exc.message) from None
    sets = list(selectors.writable_sets(request.user))
    chosen = {
        "queue": request.GET.get("queue", queues.DISAGREEMENT),
        "set": request.GET.get("set", str(sets[0].pk) if sets else ""),
        "origin": request.GET.get("origin", ""),
        "seed": request.GET.get("seed", ""),
        "run": request.GET.get("run", ""),
    }
    config = {
        "workflow": {"id": workflow.pk, "slug": workflow.slug},
        "sets": [{"id": r.pk, "name": r.name, "team": r.team.name} for r in sets],
        "queues": queues.QUEUES,
        "urls": {
            # The script puts ids in place of 0.
            "queue": reverse("review-queue", kwargs={"workflow_id": workflow.pk, "name": "-"}),
            "dossier": reverse("review-dossier", kwargs={"subject_id": 0}),
            "labels": reverse("reference-label-list", kwargs={"set_id": 0}),
            "history": reverse("reference-label-history", kwargs={"set_id": 0, "subject_id": 0}),
            "pixels": reverse("subject-pixels", kwargs={"subject_id": 0}),
        },
    }
    return render(request, "review/review.html", {
        "workflow": workflow, "sets": sets, "queues": queues.QUEUES.items(), "chosen": chosen,
        "config": config,
    })
