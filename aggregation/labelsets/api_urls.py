from django.urls import path

from aggregation.labelsets import api

urlpatterns = [
    path("", api.LabelSetListView.as_view(), name="label-set-list"),
    path("<int:number>/", api.LabelSetDetailView.as_view(), name="label-set-detail"),
    path("<int:number>/download/", api.LabelSetDownloadView.as_view(),
         name="label-set-download"),
    path("exports/<int:job_id>/", api.ExportJobDetailView.as_view(), name="label-set-export"),
]
