from django.urls import path

from apps.registry import views

app_name = "registry"
urlpatterns = [
    path("sync/<str:registered_model>/", views.sync_now, name="sync"),
]
