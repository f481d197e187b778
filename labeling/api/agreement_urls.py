from django.urls import path

from labeling.api import agreement_views

urlpatterns = [
    path("", agreement_views.ReferenceAgreementView.as_view(), name="reference-agreement"),
]
