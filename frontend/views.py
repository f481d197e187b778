from django.contrib.auth import views as auth_views
from django.db.models import Count, Q
from django.shortcuts import render

from labeling import services
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


class LoginView(auth_views.LoginView):
    """Sign-in that keeps what the volunteer did anonymously in this browser."""

    def form_valid(self, form):
        # Signing in gives the browser a new session key; remember the anonymous one first.
        anonymous_session = self.request.session.session_key
        response = super().form_valid(form)
        services.volunteer_claim_session(user=form.get_user(), session_key=anonymous_session)
        return response
