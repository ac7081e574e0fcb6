from django.urls import path
from rest_framework.routers import SimpleRouter

from tenants.api import views

router = SimpleRouter()
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [path("whoami/", views.WhoAmIView.as_view(), name="whoami"), *router.urls]
