from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("labeling.api.urls")),
    path("api/review/", include("review.api_urls")),
    path("api/label-sets/", include("aggregation.labelsets.api_urls")),
    path("api/", include("training.api_urls")),
    path("aggregation/", include("aggregation.urls")),
    path("label-sets/", include("aggregation.labelsets.urls")),
    path("models/", include("training.urls")),
    path("reference/", include("labeling.urls")),
    path("review/", include("review.urls")),
    # The frontend's sign-in comes first: it keeps an anonymous volunteer's history.
    path("", include("frontend.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
]

# Under /api/, a path that matches no route is answered with the API's JSON error.
handler404 = "labeling.api.schema.not_found"
