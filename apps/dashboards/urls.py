from django.urls import path

from apps.dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("fleet/", views.fleet, name="fleet"),
    path("dashboards/<slug:service>/<slug:environment>/", views.service_dashboard, name="service"),
    path("dashboards/<slug:service>/<slug:environment>/rollback/", views.rollback, name="rollback"),
    path(
        "dashboards/<slug:service>/<slug:environment>/rollback/progress/",
        views.rollback_progress,
        name="rollback_progress",
    ),
]
