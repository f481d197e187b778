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
    path("talk/", include("talk.urls")),
    path("projects/", include("projects.urls")),
    # Accounts (sign-in, sign-up, e-mail, password reset, the volunteer's page) come before
    # the frontend's pages.
    path("accounts/", include("accounts.urls")),
    path("", include("frontend.urls")),
]

# Under /api/, a path that matches no route is answered with the API's JSON error.
handler404 = "labeling.api.schema.not_found"
