"""Dashboard pages under /t/<tenant_slug>/customers/."""

from django.urls import include, path

from customers.views import profiles

app_name = "customers"

urlpatterns = [
    path("", profiles.CustomerListView.as_view(), name="list"),
    path("<int:customer_id>/", profiles.CustomerDetailView.as_view(), name="detail"),
    path("<int:customer_id>/export/", profiles.CustomerExportView.as_view(), name="export_one"),
    path("<int:customer_id>/erase/", profiles.CustomerEraseView.as_view(), name="erase"),
    path("companies/", profiles.CompanyListView.as_view(), name="companies"),
    path("companies/<int:company_id>/", profiles.CompanyDetailView.as_view(), name="company_detail"),
    path("attributes/", profiles.AttributeListView.as_view(), name="attributes"),
    path("attributes/<int:attribute_id>/delete/", profiles.AttributeDeleteView.as_view(), name="attribute_delete"),
    path("", include("customers.import_urls")),
    path("", include("customers.lead_urls")),
]
