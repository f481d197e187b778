from django.urls import path

from aggregation import views

urlpatterns = [
    path("", views.run_list, name="aggregation-runs"),
    path("runs/new/", views.run_start, name="aggregation-run-start"),
    path("runs/<int:run_id>/", views.run_detail, name="aggregation-run"),
    path("runs/<int:run_id>/plots/<slug:name>.png", views.run_plot, name="aggregation-run-plot"),
]
