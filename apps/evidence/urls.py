from django.urls import path

from apps.evidence import views

app_name = "evidence"
urlpatterns = [
    path("releases/<int:pk>/evidence/", views.evidence_download, name="download"),
]
