"""REST API under /api/v1/: the tenant always comes from the API key, never from the URL or body."""

from django.urls import include, path

app_name = "api"

urlpatterns = [
    path("", include("tenants.api.urls")),
    path("", include("customers.api.urls")),
    path("", include("offers.api_urls")),
]
