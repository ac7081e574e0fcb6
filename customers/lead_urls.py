"""Dashboard management of lead-capture forms (owned by the lead-forms feature)."""

urlpatterns: list = []
