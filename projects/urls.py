from django.urls import path

from projects import views

urlpatterns = [
    path("<int:project_id>/", views.project_page, name="project"),
]
