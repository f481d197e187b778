from allauth.account import views as allauth_views
from django.urls import include, path

from accounts import views

urlpatterns = [
    # Django's names for sign-in and sign-out ('login', 'logout', and LOGIN_URL), served by
    # allauth's views: one sign-in page, which merges the browser's anonymous answers.
    path("login/", allauth_views.login, name="login"),
    path("logout/", allauth_views.logout, name="logout"),
    path("me/", views.volunteer_page, name="volunteer-page"),
    path("me/delete/", views.account_delete, name="account-delete"),
    path("", include("allauth.urls")),
]
