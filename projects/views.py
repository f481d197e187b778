"""The project pages, for everyone."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labeling import roles
from projects import chart, selectors

CHART_WIDTH, CHART_HEIGHT = 600, 120


@require_GET
def project_page(request, project_id: int):
    project = selectors.project_get(project_id)
    if project is None:
        raise Http404(f"no project {project_id}")
    workflows = list(selectors.workflows_progress(project))
    days, counts = selectors.answers_per_day(project)
    return render(request, "projects/project.html", {
        "project": project,
        "workflows": workflows,
        "n_subjects": sum(w.n_subjects for w in workflows),
        "n_retired": sum(w.n_retired for w in workflows),
        "bars": chart.day_bars(days, counts, width=CHART_WIDTH, height=CHART_HEIGHT),
        "chart_width": CHART_WIDTH, "chart_height": CHART_HEIGHT,
        "n_answers_shown": sum(counts),
        "label_sets": selectors.label_sets_fed(project),
        "can_use_label_sets": roles.can_use_label_sets(request.user),
    })
