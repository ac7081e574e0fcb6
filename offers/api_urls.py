from rest_framework.routers import SimpleRouter

from offers import api

router = SimpleRouter()
router.register("products", api.ProductViewSet, basename="product")
router.register("offers", api.OfferViewSet, basename="offer")
router.register("vouchers", api.VoucherViewSet, basename="voucher")
router.register("offer-requests", api.OfferRequestViewSet, basename="offer-request")
router.register("customers", api.CustomerOffersViewSet, basename="customer-offers")

urlpatterns = router.urls
