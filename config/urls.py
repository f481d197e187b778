from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("labeling.api.urls")),
    path("aggregation/", include("aggregation.urls")),
    # The frontend's sign-in comes first: it keeps an anonymous volunteer's history.
    path("", include("frontend.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
]
