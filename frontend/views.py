from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from labeling import roles
from labeling.models import Workflow
from labeling.records import STAMP_KINDS


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
    return render(request, "frontend/home.html", {
        "workflows": workflows,
        "can_review": roles.can_read_reference_labels(request.user),
        "can_use_label_sets": roles.can_use_label_sets(request.user),
    })


# The field guide: what volunteers meet, each with simulated example stamps rendered by
# `manage.py field_guide_images` into static/frontend/guide/.
FIELD_GUIDE = [
    ("transient", "A new point source", "real",
     "A point of light in the science image that is not in the template: a round, star-shaped "
     "bright spot at the centre of the difference, as wide as the stars. It often sits on a "
     "galaxy (a supernova)."),
    ("moving", "Moving object (asteroid)", "real",
     "There in the science image and not in the template, often a little elongated along its "
     "path. Asteroids and comets are real detections."),
    ("fading", "Negative source", "real",
     "A source fainter in the science image than in the template leaves a dark, round, "
     "star-shaped spot in the difference. Dark counts as much as bright: this is Real."),
    ("dipole", "Dipole", "bogus",
     "A bright lobe and a dark lobe side by side: the two images do not line up exactly, so a "
     "star that did not change leaves a plus-and-minus pair. A misalignment, not a change."),
    ("cosmic_ray", "Cosmic ray", "bogus",
     "A sharp spot of one to three pixels, or a short streak, sharper than any star (the "
     "atmosphere spreads a star over several pixels). In the science image only."),
    ("bad_column", "Bad column or row", "bogus",
     "A bright or dark line along a whole row or column of the detector, sometimes beside a "
     "blue line of pixels with no data."),
    ("bright_star", "Bright-star residual", "bogus",
     "What is left after subtracting a saturated star: rings, a flat core, spikes or bleed "
     "trails along the columns."),
    ("satellite", "Satellite trail", "bogus",
     "A straight trail crossing the whole stamp in the science image."),
]


def field_guide() -> list[dict]:
    return [
        {
            "kind": kind, "title": title, "answer": answer, "text": text,
            "stamps": [
                {"kind": stamp, "src": f"frontend/guide/{kind}-{stamp}.png"}
                for stamp in STAMP_KINDS
            ],
        }
        for kind, title, answer, text in FIELD_GUIDE
    ]


@ensure_csrf_cookie
def classify(request, slug: str):
    """The volunteer classification page of a workflow; the page's script does the rest
    through the volunteer API (queue, classifications, pixel values, tutorial)."""
    workflow = get_object_or_404(Workflow.objects.select_related("project"), slug=slug)
    ids = {"workflow_id": workflow.pk}
    config = {
        "workflow": {"id": workflow.pk, "slug": workflow.slug, "question": workflow.question},
        "urls": {
            "queue": reverse("workflow-queue", kwargs=ids),
            "progress": reverse("workflow-progress", kwargs=ids),
            "tutorial": reverse("workflow-tutorial", kwargs=ids),
            "classifications": reverse("classification-create"),
            # The script puts a subject id in place of 0.
            "pixels": reverse("subject-pixels", kwargs={"subject_id": 0}),
            "difference": reverse(
                "subject-image", kwargs={"subject_id": 0, "kind": "difference"}
            ),
        },
        "signed_in": request.user.is_authenticated,
    }
    return render(
        request,
        "frontend/classify.html",
        {"workflow": workflow, "config": config, "field_guide": field_guide()},
    )

