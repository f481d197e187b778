from django.urls import path

from review import api

urlpatterns = [
    path("<int:workflow_id>/queue/<str:name>/", api.QueueView.as_view(), name="review-queue"),
    path("subjects/<int:subject_id>/", api.SubjectDossierView.as_view(),
         name="review-dossier"),
]
