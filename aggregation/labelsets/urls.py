from django.urls import path

from aggregation.labelsets import views

urlpatterns = [
    path("", views.label_set_list, name="label-sets"),
    path("export/", views.label_set_export, name="label-set-export"),
    path("<int:number>/", views.label_set_detail, name="label-set"),
    path("<int:number>/breakdown.png", views.label_set_plot, name="label-set-plot"),
]
