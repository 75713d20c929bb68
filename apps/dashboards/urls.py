from django.urls import path

from apps.dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("fleet/", views.fleet, name="fleet"),
    path("fleet/live/", views.fleet_live, name="fleet_live"),
    path("inbox/live/", views.inbox_live, name="inbox_live"),
    path("dashboards/<slug:service>/<slug:environment>/", views.service_dashboard, name="service"),
    path(
        "dashboards/<slug:service>/<slug:environment>/live/",
        views.service_dashboard_live,
        name="service_live",
    ),
    path(
        "dashboards/<slug:service>/<slug:environment>/charts.json",
        views.service_dashboard_charts,
        name="service_charts",
    ),
    path("dashboards/<slug:service>/<slug:environment>/rollback/", views.rollback, name="rollback"),
    path(
        "dashboards/<slug:service>/<slug:environment>/rollback/progress/",
        views.rollback_progress,
        name="rollback_progress",
    ),
]
