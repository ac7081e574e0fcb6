"""Import wizard and exports (owned by the imports feature)."""

from django.urls import path

from customers.views import imports

urlpatterns = [
    path("import/", imports.ImportUploadView.as_view(), name="import"),
    path("import/columns/", imports.ImportMappingView.as_view(), name="import_mapping"),
    path("export/", imports.CustomerListExportView.as_view(), name="export"),
]
