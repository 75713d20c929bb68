from django.urls import path

from apps.dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("fleet/", views.fleet, name="fleet"),
]
