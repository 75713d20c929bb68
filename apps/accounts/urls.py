from django.urls import path

from apps.accounts import oidc_auth, views

app_name = "accounts"

urlpatterns = [
    path("no-role/", views.no_role, name="no_role"),
    path("sso/start/", oidc_auth.SignInStartView.as_view(), name="sso_start"),
]
