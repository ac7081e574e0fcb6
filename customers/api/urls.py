from rest_framework.routers import SimpleRouter

from customers.api import views

router = SimpleRouter()
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("events", views.EventViewSet, basename="event")
router.register("orders", views.OrderViewSet, basename="order")

urlpatterns = router.urls
