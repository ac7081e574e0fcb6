from rest_framework.routers import SimpleRouter

from customers.api import segments, views

router = SimpleRouter()
router.register("customers", views.CustomerViewSet, basename="customer")
# Two more viewsets under customers/{id}/: their own scopes (segments:read, customers:read).
router.register("customers", segments.CustomerSegmentsViewSet, basename="customer-segments")
router.register("customers", segments.CustomerPredictionsViewSet, basename="customer-predictions")
router.register("events", views.EventViewSet, basename="event")
router.register("orders", views.OrderViewSet, basename="order")
router.register("segments", segments.SegmentViewSet, basename="segment")

urlpatterns = router.urls
