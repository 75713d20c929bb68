from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.accounts import oidc_auth
from apps.accounts import views as accounts_views
from controlplane import health, prometheus, readiness

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboards:fleet"), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", readiness.readyz, name="readyz"),
    path("metrics", prometheus.metrics_view, name="metrics"),
    path("admin/login/", accounts_views.admin_login, name="admin_login"),
    path("admin/", admin.site.urls),
    path("accounts/login/", accounts_views.SignInView.as_view(), name="login"),
    path("accounts/logout/", accounts_views.sign_out, name="logout"),
    # The redirect URI registered at the provider: <base URL>/accounts/sso/callback/
    path(
        "accounts/sso/callback/",
        oidc_auth.SignInCallbackView.as_view(),
        name="oidc_authentication_callback",
    ),
    path("accounts/", include("apps.accounts.urls")),
    path("", include("apps.releases.urls")),
    path("", include("apps.dashboards.urls")),
    path("registry/", include("apps.registry.urls")),
    path("audit/", include("apps.audit.urls")),
    path("notifications/", include("apps.notifications.urls")),
    path("", include("apps.evidence.urls")),
    path("api/v1/", include("apps.releases.api.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"
    ),
]

handler404 = "apps.core.api.not_found"
