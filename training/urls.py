from django.urls import path

from training import views

urlpatterns = [
    path("", views.model_list, name="models"),
    path("compare/", views.model_compare, name="models-compare"),
    path("compare/figures/<slug:figure>.png", views.model_compare_figure,
         name="models-compare-figure"),
    path("jobs/<int:pk>/", views.training_job_detail, name="training-job"),
    path("train/", views.training_start, name="training-start"),
    path("<str:name>/score/", views.scoring_start, name="scoring-start"),
    path("<str:name>/", views.model_detail, name="model-version"),
    path("<str:name>/figures/<slug:figure>.png", views.model_figure, name="model-figure"),
]
