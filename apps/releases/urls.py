from django.urls import path

from apps.releases import views

app_name = "releases"
urlpatterns = [
    path("releases/", views.release_list, name="list"),
    path("releases/new/", views.release_create, name="create"),
    path("releases/<int:pk>/", views.release_detail, name="detail"),
    path("releases/<int:pk>/status/", views.release_status, name="status"),
    path("releases/<int:pk>/diff/", views.release_diff, name="diff"),
    path("releases/<int:pk>/submit/", views.release_submit, name="submit"),
    path("releases/<int:pk>/decide/", views.release_decide, name="decide"),
    path("releases/<int:pk>/cancel/", views.release_cancel, name="cancel"),
    path("releases/<int:pk>/promote/", views.release_promote, name="promote"),
    path("releases/<int:pk>/restore/", views.release_restore, name="restore"),
    path(
        "releases/<int:pk>/freeze-override/",
        views.release_freeze_override,
        name="freeze_override",
    ),
    path(
        "releases/<int:pk>/rollout/<slug:action>/",
        views.release_rollout_action,
        name="rollout_action",
    ),
    path(
        "releases/<int:pk>/shadow-evaluation/<slug:action>/",
        views.release_shadow_action,
        name="shadow_action",
    ),
    path("inbox/", views.inbox, name="inbox"),
    path("start/", views.landing, name="landing"),
    path("services/", views.service_list, name="services"),
    path("services/<str:name>/", views.service_detail, name="service"),
    path("environments/", views.environment_list, name="environments"),
]
