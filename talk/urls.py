from django.urls import path

from talk import views

urlpatterns = [
    path("subjects/<int:subject_id>/", views.thread, name="talk-thread"),
    path("subjects/<int:subject_id>/comments/", views.comment_create, name="talk-comment"),
    path("subjects/<int:subject_id>/report/", views.report_create, name="talk-report"),
    path("comments/<int:comment_id>/moderate/", views.comment_moderate, name="talk-moderate"),
]
