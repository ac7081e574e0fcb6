"""Dashboard pages under /t/<tenant_slug>/offers/."""

from django.urls import path

from offers import views

app_name = "offers"

urlpatterns = [
    path("", views.OfferListView.as_view(), name="list"),
    path("new/", views.OfferEditView.as_view(), name="create"),
    path("<int:offer_id>/", views.OfferDetailView.as_view(), name="detail"),
    path("<int:offer_id>/edit/", views.OfferEditView.as_view(), name="edit"),
    path("products/", views.ProductListView.as_view(), name="products"),
    path("requests/", views.RequestQueueView.as_view(), name="requests"),
    path("requests/<int:request_id>/", views.RequestDetailView.as_view(), name="request_detail"),
    path("preview/", views.CustomerPreviewView.as_view(), name="preview"),
    path("recommendations/", views.RecommendationModelView.as_view(), name="recommendations"),
]
