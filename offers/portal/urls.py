"""The customer portal, mounted at /p/<tenant_slug>/. The sign-in pages are public; every other
page needs a customer signed in to this tenant's portal (see offers.portal.views)."""

from django.urls import path

from offers.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.SignInView.as_view(), name="sign_in"),
    path("link/<str:token>/", views.SignInLinkView.as_view(), name="link"),
    path("sign-out/", views.SignOutView.as_view(), name="sign_out"),
    path("language/", views.LanguageView.as_view(), name="language"),
    path("offers/", views.OfferListView.as_view(), name="offers"),
    path("offers/<int:offer_id>/", views.OfferDetailView.as_view(), name="offer"),
    path("offers/<int:offer_id>/price/", views.OfferPriceView.as_view(), name="offer_price"),
    path("offers/<int:offer_id>/claim/", views.OfferClaimView.as_view(), name="offer_claim"),
    path("requests/", views.RequestListView.as_view(), name="requests"),
    path("requests/<int:request_id>/", views.RequestDetailView.as_view(), name="request"),
    path("preferences/", views.PreferencesView.as_view(), name="preferences"),
    path("data/", views.DataView.as_view(), name="data"),
    path("data/export/", views.DataExportView.as_view(), name="data_export"),
    path("delete/", views.DeleteAccountView.as_view(), name="delete"),
]
