from rest_framework.routers import SimpleRouter

from apps.releases.api import views

router = SimpleRouter()
router.register("services", views.ServiceViewSet, basename="service")
router.register("environments", views.EnvironmentViewSet, basename="environment")
router.register("releases", views.ReleaseViewSet, basename="release")

urlpatterns = router.urls
