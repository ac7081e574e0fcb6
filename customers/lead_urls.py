"""Dashboard management of lead-capture forms, under /t/<tenant_slug>/customers/ (namespace "customers")."""

from django.urls import path

from customers.views import leads

urlpatterns = [
    path("forms/", leads.LeadFormListView.as_view(), name="leadform_list"),
    path("forms/new/", leads.LeadFormCreateView.as_view(), name="leadform_create"),
    path("forms/<int:form_id>/", leads.LeadFormDetailView.as_view(), name="leadform_detail"),
    path("forms/<int:form_id>/edit/", leads.LeadFormEditView.as_view(), name="leadform_edit"),
    path("forms/<int:form_id>/deactivate/", leads.LeadFormDeactivateView.as_view(), name="leadform_deactivate"),
]
