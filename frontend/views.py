from django.db.models import Count, Q
from django.shortcuts import render

from labeling.models import Workflow


def home(request):
    """The landing page: the active workflows with their progress, and where to go next."""
    workflows = (
        Workflow.objects.filter(active=True)
        .select_related("project")
        .annotate(
            n_subjects=Count("statuses"),
            n_retired=Count("statuses", filter=Q(statuses__retired=True)),
        )
        .order_by("pk")
    )
    return render(request, "frontend/home.html", {"workflows": workflows})
