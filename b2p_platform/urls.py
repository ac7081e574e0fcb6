from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from tenants.views import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("b2p_platform.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("healthz", health.healthz, name="healthz"),
    path("t/<slug:tenant_slug>/customers/", include("customers.urls")),
    path("t/<slug:tenant_slug>/segments/", include("customers.segment_urls")),
    path("t/<slug:tenant_slug>/offers/", include("offers.urls")),
    path("f/", include("customers.public_urls")),
    path("p/<slug:tenant_slug>/", include("offers.portal.urls")),
    path("", include("tenants.urls")),
]
