from django.urls import path

from review import views

urlpatterns = [
    path("<slug:slug>/", views.review, name="review"),
]
