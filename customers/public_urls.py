"""Public lead-capture pages, mounted at /f/: a tenant's form, its embed script and the
double opt-in confirmation link. Public by design; addressed by tenant slug + form slug or token."""

from django.urls import path

from customers.views import leads

app_name = "leadforms"

urlpatterns = [
    path("<slug:tenant_slug>/confirm/<str:token>/", leads.LeadConfirmView.as_view(), name="confirm"),
    path("<slug:tenant_slug>/<slug:form_slug>/", leads.PublicLeadFormView.as_view(), name="form"),
    path("<slug:tenant_slug>/<slug:form_slug>/embed.js", leads.LeadFormEmbedScriptView.as_view(), name="embed"),
]
