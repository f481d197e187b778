from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.reference_set_list, name="reference-sets"),
    path("balance.png", views.class_balance_plot, name="reference-balance-plot"),
    path("sets/<int:set_id>/", views.reference_set_detail, name="reference-set"),
    path("sets/<int:set_id>/balance.png", views.class_balance_plot,
         name="reference-set-balance-plot"),
    path("agreement/", views.agreement, name="reference-agreement-page"),
]
