"""Dashboard pages under /t/<tenant_slug>/segments/."""

from django.urls import path

from customers.views import segments

app_name = "segments"

urlpatterns = [
    path("", segments.SegmentListView.as_view(), name="list"),
    path("new/", segments.SegmentBuilderView.as_view(), name="create"),
    path("preview/", segments.SegmentPreviewView.as_view(), name="preview"),
    path("models/", segments.PredictionModelsView.as_view(), name="models"),
    path("<int:segment_id>/", segments.SegmentDetailView.as_view(), name="detail"),
    path("<int:segment_id>/edit/", segments.SegmentBuilderView.as_view(), name="edit"),
    path("<int:segment_id>/overlap/", segments.SegmentOverlapView.as_view(), name="overlap"),
    path("<int:segment_id>/rebuild/", segments.SegmentRebuildView.as_view(), name="rebuild"),
    path("<int:segment_id>/export/", segments.SegmentExportView.as_view(), name="export"),
    path("<int:segment_id>/delete/", segments.SegmentDeleteView.as_view(), name="delete"),
]
