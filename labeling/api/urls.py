from django.urls import include, path

from labeling.api import views

urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
    path("workflows/", views.WorkflowListView.as_view(), name="workflow-list"),
    path("workflows/<int:workflow_id>/queue/", views.QueueView.as_view(), name="workflow-queue"),
    path(
        "workflows/<int:workflow_id>/progress/",
        views.WorkflowProgressView.as_view(),
        name="workflow-progress",
    ),
    path(
        "workflows/<int:workflow_id>/tutorial/",
        views.TutorialView.as_view(),
        name="workflow-tutorial",
    ),
    path(
        "classifications/",
        views.ClassificationCreateView.as_view(),
        name="classification-create",
    ),
    path("subjects/<int:subject_id>/", views.SubjectDetailView.as_view(), name="subject-detail"),
    path(
        "subjects/<int:subject_id>/images/<str:kind>.png",
        views.SubjectImageView.as_view(),
        name="subject-image",
    ),
    path("subjects/<int:subject_id>/pixels/", views.subject_pixels, name="subject-pixels"),
    path("reference-sets/", views.ReferenceSetListView.as_view(), name="reference-set-list"),
    path(
        "reference-sets/<int:set_id>/labels/",
        views.ReferenceLabelListCreateView.as_view(),
        name="reference-label-list",
    ),
    path(
        "reference-sets/<int:set_id>/labels/<int:subject_id>/history/",
        views.ReferenceLabelHistoryView.as_view(),
        name="reference-label-history",
    ),
    path(
        "reference-sets/<int:set_id>/labels.csv",
        views.ReferenceLabelsCsvView.as_view(),
        name="reference-labels-csv",
    ),
    path(
        "reference-sets/<int:set_id>/disagreements/",
        views.ReferenceDisagreementsView.as_view(),
        name="reference-disagreements",
    ),
    path("teams/<slug:team_name>/members/", views.TeamMembersView.as_view(),
         name="team-members"),
    path("reference-agreement/", include("labeling.api.agreement_urls")),
]
