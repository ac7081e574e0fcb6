"""Public lead-capture form pages /f/<tenant_slug>/... (owned by the lead-forms feature)."""

app_name = "leadforms"
urlpatterns: list = []
