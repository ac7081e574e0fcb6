"""Import wizard and exports (owned by the imports feature)."""

urlpatterns: list = []
