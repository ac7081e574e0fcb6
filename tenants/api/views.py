from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants import services
from tenants.api.base import IsApiKey, TenantScopedViewSet
from tenants.api.serializers import JobRunSerializer, JobStartSerializer, WhoAmISerializer
from tenants.models import JobRun
from tenants.scoping import resolve_tenant


class WhoAmIView(APIView):
    """The tenant and scopes of the calling key. Any valid key may call it."""

    permission_classes = [IsApiKey]

    @extend_schema(responses=WhoAmISerializer)
    def get(self, request: Request) -> Response:
        tenant, _m = resolve_tenant(api_key_tenant_id=request.auth.tenant_id)
        data = {"tenant": tenant, "key_prefix": request.auth.prefix, "key_name": request.auth.name, "scopes": request.auth.scopes}
        return Response(WhoAmISerializer(data).data)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Background jobs of the key's tenant: status, progress, counts and result."""

    scope_resource = "jobs"
    serializer_class = JobRunSerializer

    def base_queryset(self) -> QuerySet[JobRun]:
        return JobRun.objects.all()

    @extend_schema(request=JobStartSerializer, responses={202: JobRunSerializer})
    def create(self, request: Request) -> Response:
        data = JobStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.start_job(tenant=request.tenant, actor=request.auth, **data.validated_data)
        return Response(JobRunSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path="download", url_name="download")
    def download(self, request: Request, pk: str) -> FileResponse:
        job = self.get_object()
        if not job.result_file:
            from rest_framework.exceptions import NotFound

            raise NotFound("This job has no result file.")
        name = job.result_file.name.rsplit("/", 1)[-1]
        return FileResponse(job.result_file.open("rb"), as_attachment=True, filename=name)
